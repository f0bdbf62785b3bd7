"""`ImagePreprocessing`: the one decision of how raw images become network inputs.

A wrapped model takes images as the user holds them (uint8 0-255, floats in
`[0, 1]` or `[0, 255]`, or images the user already standardised) in `fit`,
`evaluate`, `predict`, `validation_data` and `label_quality`. The pixel
scale and the per-channel standardisation are fixed once, at the first
`fit` (inferred from the training images unless given), saved with the
model, and applied by the model itself, so every path sees the same
inputs. Keras' `Rescaling` and `Normalization` layers apply one fixed
transform; this layer adds the inference and the checks that refuse
images of another scale than the model was trained on (a silent 255x
error otherwise ends in chance-level metrics).
"""

from __future__ import annotations

from collections.abc import Sequence

import keras
import numpy as np
from keras import ops

from keras_sanm.data.normalization import NORMALIZATION, infer_pixel_scale, strided_sample

AUTO = "auto"


@keras.saving.register_keras_serializable(package="keras_sanm")
class ImagePreprocessing(keras.layers.Layer):
    """Pixel scaling and per-channel standardisation, decided once and saved.

    `x -> (x / pixel_scale - mean) / std`, per channel, in float32.

    Args:
        pixel_scale: `255.0` (pixel values 0-255: uint8, or floats in
            `[0, 255]`), `1.0` (floats in `[0, 1]`), `None` (images already
            standardised: passed as they are), or `"auto"`: read from the
            training images at the first `fit` (uint8 or floats above 1:
            255; floats in `[0, 1]`: 1; floats with negative values: `None`).
        mean, std: per-channel standardisation after scaling, or `None` for
            none, or `"auto"`: computed from (up to 10,000 of) the training
            images at the first `fit`.

    Example:
    >>> pre = ImagePreprocessing.for_dataset("cifar10")   # published constants
    >>> model = keras_sanm.wrap(base, preprocessing=pre)
    """

    def __init__(self, pixel_scale: float | str | None = AUTO,
                 mean: Sequence[float] | str | None = AUTO,
                 std: Sequence[float] | str | None = AUTO, **kwargs):
        kwargs.setdefault("dtype", "float32")
        super().__init__(**kwargs)
        if pixel_scale not in (AUTO, None) and float(pixel_scale) not in (1.0, 255.0):
            raise ValueError(f"pixel_scale must be 1.0, 255.0, None or 'auto'; got {pixel_scale!r}.")
        self.pixel_scale = pixel_scale if pixel_scale in (AUTO, None) else float(pixel_scale)
        self.mean = _channels(mean, "mean")
        self.std = _channels(std, "std")
        if (self.mean is None) != (self.std is None) or (self.mean == AUTO) != (self.std == AUTO):
            raise ValueError("Give mean and std together (both values, both None or both 'auto').")
        if isinstance(self.std, tuple) and min(self.std) <= 0:
            raise ValueError(f"std must be positive; got {self.std}.")
        if self.pixel_scale is None and self.mean not in (None, AUTO):
            raise ValueError("Standardised images (pixel_scale=None) take no mean/std.")

    @classmethod
    def for_dataset(cls, name: str) -> ImagePreprocessing:
        """The published per-channel constants of a dataset (e.g. `"cifar10"`).

        Args:
            name: a key of `keras_sanm.data.NORMALIZATION`.

        Returns:
            An `ImagePreprocessing` with those constants; the pixel scale is
            read from the training images.
        """
        if name not in NORMALIZATION:
            raise ValueError(f"No published constants for {name!r}; known: {sorted(NORMALIZATION)}.")
        mean, std = NORMALIZATION[name]
        return cls(mean=mean, std=std)

    @classmethod
    def create(cls, value) -> ImagePreprocessing:
        """An `ImagePreprocessing` from `wrap(preprocessing=...)`.

        Args:
            value: `None` (all inferred at the first `fit`), an
                `ImagePreprocessing`, its config dict, a dataset name
                (published constants) or `"none"` (images already
                standardised, used as they are).
        """
        if value is None:
            return cls()
        if isinstance(value, ImagePreprocessing):
            return cls(**value.get_config())
        if isinstance(value, dict):
            return cls(**value)
        if value == "none":
            return cls(pixel_scale=None, mean=None, std=None)
        if isinstance(value, str):
            return cls.for_dataset(value)
        raise ValueError(
            "preprocessing must be None, an ImagePreprocessing, a dataset name or 'none'; "
            f"got {value!r}.")

    # ------------------------------------------------------------- deciding
    @property
    def decided(self) -> bool:
        return AUTO not in (self.pixel_scale, self.mean)

    def decide(self, images: np.ndarray) -> str | None:
        """Fills the `"auto"` settings from training images (once).

        Args:
            images: `(N, H, W, C)` training images (an array, memory-mapped
                or not; at most 10,000 of them are read).

        Returns:
            A sentence saying what was inferred, or `None` if nothing was.
        """
        if self.decided:
            self.check(images)
            return None
        images = strided_sample(images)
        said = []
        if self.pixel_scale == AUTO:
            self.pixel_scale = infer_pixel_scale(images)
            said.append({255.0: "pixel values 0-255 (divided by 255)",
                         1.0: "pixel values in [0, 1]",
                         None: "images already standardised (negative values): used as they are"}
                        [self.pixel_scale])
            if self.pixel_scale is None:
                self.mean = self.std = None
        self.check(images)
        if self.mean == AUTO:
            scaled = images.astype(np.float32) / self.pixel_scale
            channels = scaled.reshape(-1, scaled.shape[-1])
            self.mean = tuple(float(v) for v in channels.mean(axis=0))
            self.std = tuple(max(float(v), 1e-3) for v in channels.std(axis=0))
            said.append("per-channel mean " + _fmt(self.mean) + " and std " + _fmt(self.std)
                        + f" from {len(images)} training images")
        return "Input preprocessing: " + "; ".join(said) + "." if said else None

    def check(self, images: np.ndarray, what: str = "images") -> None:
        """Refuses images of another scale than the decided one.

        Args:
            images: a batch or array of images as the user passes them.
            what: how the error names them.
        """
        if self.pixel_scale == AUTO:
            raise ValueError(
                "The model fixes how it scales and standardises images at its first fit; "
                "train it first, or pass preprocessing= to keras_sanm.wrap (e.g. "
                "ImagePreprocessing(pixel_scale=255.0, mean=..., std=...)).")
        images = strided_sample(images)
        if images.size == 0:
            return
        low, high = float(images.min()), float(images.max())
        integer = np.issubdtype(images.dtype, np.integer)
        if self.pixel_scale is None and integer:
            raise ValueError(
                f"The {what} are {images.dtype} pixels, but the model was trained on images "
                "already standardised by the user; standardise them the same way.")
        if self.pixel_scale is not None and low < -1e-3:
            raise ValueError(
                f"The {what} have negative values (min {low:.3g}), but the model takes raw "
                "pixel values and standardises them itself; pass the images before "
                "standardisation.")
        if self.pixel_scale == 255.0 and not integer and 0 < high <= 1.0:
            raise ValueError(
                f"The {what} look scaled to [0, 1] (max {high:.3g}), but the model takes pixel "
                "values 0-255 as it was trained on; pass images * 255 or the uint8 images.")
        if self.pixel_scale == 1.0 and high > 1.0 + 1e-3:
            raise ValueError(
                f"The {what} have values up to {high:.4g}, but the model takes floats in "
                "[0, 1] as it was trained on; pass images / 255.")

    def adopt_legacy_constants(self, mean, std) -> None:
        """Gives a model of a `keras-sanm train` run saved before models owned their
        preprocessing (loaded as `"none"`) the dataset constants its inputs were
        standardised with, so it takes raw uint8 images like a new one.

        Args:
            mean, std: the dataset's constants (`None`: nothing to adopt).
        """
        if self.pixel_scale is None and mean is not None:
            self.pixel_scale = 255.0
            self.mean, self.std = _channels(mean, "mean"), _channels(std, "std")

    # ------------------------------------------------------------- applying
    def call(self, images):
        if not self.decided:
            raise ValueError("ImagePreprocessing is applied before it was decided; fit first.")
        x = ops.cast(images, "float32")
        if self.pixel_scale is not None and self.pixel_scale != 1.0:
            x = x / self.pixel_scale
        if self.mean is not None:
            x = (x - np.asarray(self.mean, np.float32)) / np.asarray(self.std, np.float32)
        return x

    def apply_numpy(self, images) -> np.ndarray:
        """`call` on a numpy array, as numpy (for host-side code such as figures)."""
        return ops.convert_to_numpy(self.call(np.asarray(images)))

    def compute_output_spec(self, images):
        return keras.KerasTensor(images.shape, dtype="float32")

    def get_config(self) -> dict:
        config = super().get_config()
        config.update(pixel_scale=self.pixel_scale, mean=_listed(self.mean),
                      std=_listed(self.std))
        return config


def _channels(value, name):
    if value is None or (isinstance(value, str) and value == AUTO):
        return value
    if isinstance(value, str):
        raise ValueError(f"{name} must be per-channel values, None or 'auto'; got {value!r}.")
    values = tuple(float(v) for v in np.ravel(value))
    if not values:
        raise ValueError(f"{name} needs one value per channel.")
    return values


def _listed(value):
    return list(value) if isinstance(value, tuple) else value


def _fmt(values) -> str:
    return "(" + ", ".join(f"{v:.3f}" for v in values) + ")"
