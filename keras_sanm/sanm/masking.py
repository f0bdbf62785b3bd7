"""SANM adversarial noisy masking (docs/algorithms.md, "SANM"), vectorised with `keras.ops`.

Every function works on a whole batch at once: boxes are built by comparing index
grids with per-sample bounds, so shapes stay static and nothing leaves the device.
"""

from __future__ import annotations

from keras import ops

ANCHORS = ("corner", "center")
# The box's aspect ratio (height / width): drawn per sample from U(0.8, 1/0.8),
# the best option of the SANM paper's aspect-ratio ablation and the code's.
DEFAULT_MASK_ASPECT = "uniform:0.8"


def aspect_range(spec: str | float) -> tuple[float, float]:
    """The `(low, high)` range of box aspect ratios (height / width) a spec names.

    The SANM paper's mask-shape ablation compares a fixed aspect ratio with one
    drawn uniformly per sample; these are its two kinds.

    Args:
        spec: `"uniform:d"`: per sample from `U(d, 1/d)` (or `U(1/d, d)`),
            e.g. `"uniform:0.8"` (the default, `U(0.8, 1.25)`); `"fixed:d"`,
            or the number `d`: every box `d` times as tall as wide (1.0:
            square).

    Returns:
        `(low, high)` with `0 < low <= high`; equal for a fixed ratio.

    Example:
    >>> aspect_range("uniform:0.8")
    (0.8, 1.25)
    >>> aspect_range(2.0)
    (2.0, 2.0)
    """
    kind, value = "fixed", spec
    if isinstance(spec, str):
        kind, _, value = spec.partition(":") if ":" in spec else ("fixed", "", spec)
    try:
        number = float(value)
    except (TypeError, ValueError):
        number = float("nan")
    if kind not in ("fixed", "uniform") or not 0 < number < float("inf"):
        raise ValueError(
            f"mask aspect {spec!r}: use 'uniform:d' (per sample from U(d, 1/d)), "
            "'fixed:d' or a number d > 0 (height / width)."
        )
    if kind == "fixed":
        return number, number
    return min(number, 1.0 / number), max(number, 1.0 / number)


def activation_map(feature_map, image_size: tuple[int, int]):
    """Activation map of a feature map, upsampled and quantised to `[0, 255]`.

    Channel-wise sum of squares, bilinear upsampling with half-pixel centres
    and no antialiasing, min-max scaling and flooring (`SANM-code`
    `attention_erase_map`; the floor creates the reference's ties).

    Args:
        feature_map: `(B, h, w, K)` encoder output.
        image_size: `(H, W)` of the images to be masked.

    Returns:
        `(B, H, W)` float tensor of integers in `[0, 255]`.

    Example:
    >>> q = activation_map(keras.random.normal((2, 4, 4, 8)), (32, 32))
    >>> tuple(q.shape)
    (2, 32, 32)
    """
    if len(feature_map.shape) != 4:
        raise ValueError(
            "activation_map expects a (batch, height, width, channels) feature "
            f"map; got shape {tuple(feature_map.shape)}."
        )
    feature_map = ops.cast(feature_map, "float32")
    energy = ops.sum(ops.square(feature_map), axis=-1, keepdims=True)
    upsampled = ops.image.resize(
        energy, image_size, interpolation="bilinear", antialias=False
    )[..., 0]
    low = ops.min(upsampled, axis=(1, 2), keepdims=True)
    high = ops.max(upsampled, axis=(1, 2), keepdims=True)
    return ops.floor(255.0 * (upsampled - low) / (high - low + 1e-12))


def _first_argmax(scores):
    """Row-major index of the first maximum of each `(B, H, W)` integer map."""
    batch, height, width = scores.shape
    size = height * width
    flat = ops.reshape(ops.cast(scores, "int32"), (-1, size))
    position = ops.arange(size, dtype="int32")
    return ops.argmax(flat * size + (size - 1 - position), axis=-1)


def peak_valley_locations(quantised_map):
    """First (row-major) positions of the maximum and minimum of a quantised map.

    Args:
        quantised_map: `(B, H, W)` output of `activation_map`.

    Returns:
        `(peak_rows, peak_cols, valley_rows, valley_cols)`, int32 tensors of
        shape `(B,)`.

    Example:
    >>> m = ops.zeros((1, 8, 8))
    >>> pr, pc, vr, vc = peak_valley_locations(m)
    """
    width = quantised_map.shape[2]
    peak = ops.cast(_first_argmax(quantised_map), "int32")
    valley = ops.cast(_first_argmax(255.0 - quantised_map), "int32")
    return peak // width, peak % width, valley // width, valley % width


def box_sizes(ratio, aspect, image_size: tuple[int, int], area_factor: float):
    """Box height and width from a mask ratio and an aspect ratio.

    `area = area_factor * ratio * H * W`, `height = round(sqrt(area * aspect))`,
    `width = round(sqrt(area / aspect))` with round-half-to-even, clamped to
    `[1, H - 1]` and `[1, W - 1]` (the static-shape replacement of the
    reference's re-draw loop, which never triggers on CIFAR).

    Args:
        ratio: `(B,)` mask ratios.
        aspect: `(B,)` aspect ratios (height / width).
        image_size: `(H, W)`.
        area_factor: fraction of `ratio * H * W` covered (0.5 on CIFAR).

    Returns:
        `(heights, widths)` int32 tensors of shape `(B,)`.
    """
    height, width = image_size
    area = area_factor * ratio * float(height * width)
    box_h = ops.round(ops.sqrt(area * aspect))
    box_w = ops.round(ops.sqrt(area / aspect))
    box_h = ops.clip(box_h, 1.0, float(max(height - 1, 1)))
    box_w = ops.clip(box_w, 1.0, float(max(width - 1, 1)))
    return ops.cast(box_h, "int32"), ops.cast(box_w, "int32")


def place_boxes(rows, cols, box_h, box_w, image_size, anchor: str = "corner"):
    """Top-left corners of boxes anchored at given locations, kept inside the image.

    `anchor="corner"` (reference code): the location is the top-left corner,
    pushed back inside when the box would cross the bottom or right border.
    `anchor="center"` (the paper's figure): the box is centred on the location
    and clamped to the image.

    Args:
        rows, cols: `(B,)` int32 anchor locations.
        box_h, box_w: `(B,)` int32 box sizes.
        image_size: `(H, W)`.
        anchor: `"corner"` or `"center"`.

    Returns:
        `(tops, lefts)`, int32 tensors of shape `(B,)`.
    """
    if anchor not in ANCHORS:
        raise ValueError(f"anchor must be one of {ANCHORS}; got {anchor!r}.")
    height, width = image_size
    if anchor == "center":
        rows = rows - box_h // 2
        cols = cols - box_w // 2
    tops = ops.clip(rows, 0, height - box_h)
    lefts = ops.clip(cols, 0, width - box_w)
    return tops, lefts


def box_masks(tops, lefts, box_h, box_w, image_size):
    """Boolean `(B, H, W)` masks, true inside each sample's box.

    Example:
    >>> m = box_masks(ops.array([1]), ops.array([2]), ops.array([2]),
    ...               ops.array([3]), (8, 8))
    >>> int(ops.sum(ops.cast(m, "int32")))
    6
    """
    height, width = image_size
    row_grid = ops.reshape(ops.arange(height, dtype="int32"), (1, height, 1))
    col_grid = ops.reshape(ops.arange(width, dtype="int32"), (1, 1, width))

    def column(v):
        return ops.reshape(ops.cast(v, "int32"), (-1, 1, 1))

    top, left = column(tops), column(lefts)
    inside_rows = (row_grid >= top) & (row_grid < top + column(box_h))
    inside_cols = (col_grid >= left) & (col_grid < left + column(box_w))
    return inside_rows & inside_cols


def fill_boxes(images, masks, fill_values):
    """Replace each box with a per-sample, per-channel constant.

    Args:
        images: `(B, H, W, C)` images (normalised space in the reference).
        masks: `(B, H, W)` boolean box masks.
        fill_values: `(B, C)` constants.

    Returns:
        The masked images, same shape and dtype as `images`.
    """
    fill = ops.cast(fill_values[:, None, None, :], images.dtype)
    return ops.where(masks[..., None], fill, images)


def modulate_labels(targets, ratio, clip_negative: bool = False):
    """Soften targets in proportion to the mask ratio (docs/algorithms.md, "SANM").

    The arg-max class loses `ratio`, every other class gains
    `ratio / (C - 1)`; the sum stays 1. Applied once per sample with the
    accepted ratio (fixes the reference's repeated modification, B1).
    Entries can become negative when the top class has less mass than
    `ratio`, as in the reference; `clip_negative=True` clips them at 0 and
    renormalises (B4).

    Args:
        targets: `(B, C)` probability vectors (one-hot or soft).
        ratio: `(B,)` mask ratios.
        clip_negative: clip negative entries and renormalise.

    Returns:
        `(B, C)` modulated targets.

    Example:
    >>> modulate_labels(ops.one_hot(ops.array([0]), 3), ops.array([0.1]))
    ... # [[0.9, 0.05, 0.05]]
    """
    num_classes = targets.shape[-1]
    if num_classes is None or num_classes < 2:
        raise ValueError("modulate_labels needs at least two classes.")
    targets = ops.cast(targets, "float32")
    ratio = ops.reshape(ops.cast(ratio, "float32"), (-1, 1))
    top = ops.one_hot(ops.argmax(targets, axis=-1), num_classes)
    share = ratio / float(num_classes - 1)
    modulated = targets + share - top * (ratio + share)
    if clip_negative:
        modulated = ops.maximum(modulated, 0.0)
        modulated = modulated / ops.sum(modulated, axis=-1, keepdims=True)
    return modulated
