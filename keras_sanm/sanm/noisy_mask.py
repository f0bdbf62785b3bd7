"""`NoisyMask`: the SANM masking layer (docs/algorithms.md, "SANM")."""

from __future__ import annotations

import keras
from keras import ops

from keras_sanm.backend import replica_rows, replicas_in_step
from keras_sanm.sanm import masking


@keras.saving.register_keras_serializable(package="keras_sanm")
class NoisyMask(keras.layers.Layer):
    """Masks the most and least activated region of each image with noise.

    For each sample a mask ratio `s = U(ratio_range) + quality_scale * (1 - w)`
    is drawn (`w` = label quality, 1 = clean), a box of area
    `area_factor * s * H * W` and aspect `U(aspect_range)` is anchored at the
    activation peak and at the valley of the encoder feature map, and each box
    is filled with a per-channel constant drawn from `U(fill_range)`. The
    defaults are the reference CIFAR settings (`SANM-code`).

    Args:
        ratio_range: range of the random part of the mask ratio.
        quality_scale: weight of `1 - w` in the mask ratio.
        area_factor: box area as a fraction of `s * H * W` (0.5 on CIFAR,
            1.0 in the Clothing1M reading).
        aspect_range: range of the height/width ratio, drawn per sample
            (equal bounds: a fixed ratio); `masking.aspect_range` reads the
            `"uniform:d"` / `"fixed:d"` specs of `wrap(mask_aspect=...)`.
        anchor: `"corner"` (reference code: the peak is the top-left corner)
            or `"center"` (the paper's figure).
        shared_draws: one ratio and aspect per sample for both boxes (CIFAR);
            `False` draws them per box (Clothing1M).
        fill_range: range of the per-channel fill constants (the reference
            fills normalised images with `U(0, 1)`).
        seed: integer seed of the layer's `SeedGenerator`.

    Call args:
        images: `(B, H, W, C)` images to mask.
        feature_map: `(B, h, w, K)` encoder output for the same images.
        quality: `(B,)` label quality in `[0, 1]`.

    Returns:
        A dict with `peak_images`, `valley_images` (`(B, H, W, C)`),
        `peak_ratio`, `valley_ratio` (`(B,)` mask ratios used for label
        modulation) and `peak_box`, `valley_box` (`(B, 4)` int32
        `top, left, height, width`).

    Example:
    >>> mask = NoisyMask(seed=0)
    >>> out = mask(keras.random.normal((2, 32, 32, 3)),
    ...            keras.random.normal((2, 4, 4, 16)), ops.ones((2,)))
    >>> tuple(out["peak_images"].shape)
    (2, 32, 32, 3)
    """

    def __init__(
        self,
        ratio_range: tuple[float, float] = (0.02, 0.07),
        quality_scale: float = 0.03,
        area_factor: float = 0.5,
        aspect_range: tuple[float, float] = (0.8, 1.25),
        anchor: str = "corner",
        shared_draws: bool = True,
        fill_range: tuple[float, float] = (0.0, 1.0),
        seed: int | None = None,
        **kwargs,
    ):
        super().__init__(**kwargs)
        if anchor not in masking.ANCHORS:
            raise ValueError(
                f"anchor must be one of {masking.ANCHORS}; got {anchor!r}."
            )
        for name, (low, high) in (
            ("ratio_range", ratio_range),
            ("aspect_range", aspect_range),
            ("fill_range", fill_range),
        ):
            if not low <= high:
                raise ValueError(f"{name} must be (low, high) with low <= high.")
        if ratio_range[0] < 0 or quality_scale < 0 or area_factor <= 0:
            raise ValueError(
                "ratio_range and quality_scale must be >= 0 and area_factor > 0."
            )
        if aspect_range[0] <= 0:
            raise ValueError("aspect_range must be positive.")
        self.ratio_range = tuple(float(v) for v in ratio_range)
        self.quality_scale = float(quality_scale)
        self.area_factor = float(area_factor)
        self.aspect_range = tuple(float(v) for v in aspect_range)
        self.anchor = anchor
        self.shared_draws = bool(shared_draws)
        self.fill_range = tuple(float(v) for v in fill_range)
        self.seed = seed
        self.seed_generator = keras.random.SeedGenerator(seed)

    def _uniform(self, shape, value_range):
        """Per-sample uniform draws; a data-parallel replica draws the global
        batch's and keeps its own rows (the draws of a one-device step)."""
        replicas = replicas_in_step()
        shape = (shape[0] * replicas, *shape[1:])
        values = keras.random.uniform(
            shape, value_range[0], value_range[1], seed=self.seed_generator
        )
        return replica_rows(values)

    def _draw_ratio_and_aspect(self, batch, quality):
        ratio = self._uniform((batch,), self.ratio_range)
        ratio = ratio + self.quality_scale * (1.0 - quality)
        return ratio, self._uniform((batch,), self.aspect_range)

    def _mask(self, images, rows, cols, ratio, aspect):
        size = tuple(images.shape[1:3])
        box_h, box_w = masking.box_sizes(ratio, aspect, size, self.area_factor)
        tops, lefts = masking.place_boxes(rows, cols, box_h, box_w, size, self.anchor)
        masks = masking.box_masks(tops, lefts, box_h, box_w, size)
        fill = self._uniform((ops.shape(images)[0], images.shape[-1]), self.fill_range)
        box = ops.stack([tops, lefts, box_h, box_w], axis=-1)
        return masking.fill_boxes(images, masks, fill), box

    def call(self, images, feature_map, quality):
        images = ops.convert_to_tensor(images)
        batch = ops.shape(images)[0]
        quality = ops.clip(ops.cast(ops.reshape(quality, (-1,)), "float32"), 0.0, 1.0)
        feature_map = ops.stop_gradient(feature_map)
        amap = masking.activation_map(feature_map, tuple(images.shape[1:3]))
        peak_r, peak_c, valley_r, valley_c = masking.peak_valley_locations(amap)

        peak_ratio, peak_aspect = self._draw_ratio_and_aspect(batch, quality)
        if self.shared_draws:
            valley_ratio, valley_aspect = peak_ratio, peak_aspect
        else:
            valley_ratio, valley_aspect = self._draw_ratio_and_aspect(batch, quality)
        peak_images, peak_box = self._mask(
            images, peak_r, peak_c, peak_ratio, peak_aspect
        )
        valley_images, valley_box = self._mask(
            images, valley_r, valley_c, valley_ratio, valley_aspect
        )
        return {
            "peak_images": peak_images,
            "valley_images": valley_images,
            "peak_ratio": peak_ratio,
            "valley_ratio": valley_ratio,
            "peak_box": peak_box,
            "valley_box": valley_box,
        }

    def compute_output_spec(self, images, feature_map, quality):
        batch = images.shape[0]
        image_spec = keras.KerasTensor(images.shape, dtype=images.dtype)
        return {
            "peak_images": image_spec,
            "valley_images": image_spec,
            "peak_ratio": keras.KerasTensor((batch,), dtype="float32"),
            "valley_ratio": keras.KerasTensor((batch,), dtype="float32"),
            "peak_box": keras.KerasTensor((batch, 4), dtype="int32"),
            "valley_box": keras.KerasTensor((batch, 4), dtype="int32"),
        }

    def get_config(self):
        config = super().get_config()
        config.update(
            ratio_range=self.ratio_range,
            quality_scale=self.quality_scale,
            area_factor=self.area_factor,
            aspect_range=self.aspect_range,
            anchor=self.anchor,
            shared_draws=self.shared_draws,
            fill_range=self.fill_range,
            seed=self.seed,
        )
        return config

