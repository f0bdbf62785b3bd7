"""Per-dataset normalisation constants (docs/algorithms.md, "Normalisation") and image scaling."""

from __future__ import annotations

import numpy as np

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
