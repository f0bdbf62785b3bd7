"""Per-dataset normalisation constants (docs/algorithms.md, "Normalisation") and image scaling."""

from __future__ import annotations

import numpy as np

from keras_sanm.data.validation import is_lazy_images

NORMALIZATION = {
    "cifar10": ((0.4914, 0.4822, 0.4465), (0.2023, 0.1994, 0.2010)),
    "cifar100": ((0.507, 0.487, 0.441), (0.267, 0.256, 0.276)),
    "clothing1m": ((0.6959, 0.6537, 0.6371), (0.3113, 0.3192, 0.3214)),
}
NORMALIZATION["cifar10_n"] = NORMALIZATION["cifar10"]
NORMALIZATION["cifar100_n"] = NORMALIZATION["cifar100"]


def normalize_images(images, mean=None, std=None) -> np.ndarray:
    """uint8 images -> float32 in `[0, 1]`, then `(x - mean) / std` per channel.

    Float input is taken as already scaled and only standardised.

    Args:
        images: `(B, H, W, C)` uint8 or float array.
        mean, std: per-channel constants, or `None` to skip standardisation.

    Returns:
        float32 array of the same shape.
    """
    images = np.asarray(images)
    out = images.astype(np.float32)
    if images.dtype == np.uint8:
        out /= 255.0
    if mean is not None:
        out -= np.asarray(mean, dtype=np.float32)
        out /= np.asarray(std, dtype=np.float32)
    return out


def raw_batch(images) -> np.ndarray:
    """A batch as training pipelines hand it to the step: uint8 kept (4x less to
    move), other values as float32. The model scales and standardises it
    (`keras_sanm.ImagePreprocessing`)."""
    images = np.asarray(images)
    return images if images.dtype == np.uint8 else images.astype(np.float32)


# Images read to infer or check a pixel scale: an evenly strided subset of
# larger arrays, so the decision costs the same for any data size. Images
# decoded from files on access cost more to read: fewer of them.
SAMPLE_SIZE = 10_000
LAZY_SAMPLE_SIZE = 1_000


def strided_sample(images) -> np.ndarray:
    """At most `SAMPLE_SIZE` images (`LAZY_SAMPLE_SIZE` of images read from
    files), evenly strided, as an array."""
    if is_lazy_images(images):
        return np.asarray(images[:: max(1, len(images) // LAZY_SAMPLE_SIZE)])
    step = max(1, len(images) // SAMPLE_SIZE) if np.ndim(images) == 4 else 1
    return np.asarray(images[::step])


def infer_pixel_scale(images) -> float | None:
    """255.0 for uint8 images or floats in `[0, 255]`, 1.0 for floats in `[0, 1]`,
    `None` for standardised floats (negative values); reads at most
    `SAMPLE_SIZE` images."""
    images = strided_sample(images)
    if np.issubdtype(images.dtype, np.integer):
        if images.dtype != np.uint8 and images.size and images.max() > 255:
            raise ValueError(f"Cannot read the pixel scale of {images.dtype} images with values "
                             "above 255; pass preprocessing= to keras_sanm.wrap.")
        return 255.0
    low, high = float(images.min()), float(images.max())
    if low < 0:
        return None
    if high <= 1.0:
        return 1.0
    if high <= 255.0:
        return 255.0
    raise ValueError(
        f"Cannot read the pixel scale of float images with values in [{low:.3g}, {high:.3g}]: "
        "neither [0, 1], [0, 255] nor standardised. Pass preprocessing= to keras_sanm.wrap.")
