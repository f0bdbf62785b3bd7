"""Pillow's 8-bit image operations, on a whole batch, in `keras.ops`.

The strong views of SANM(DivideMix) (AutoAugment, RandAugment, Cutout) are
defined by Pillow operations on one 8-bit image at a time
(`keras_sanm/data/strong_augment.py`). These are the same operations on a
`(B, H, W, C)` float batch holding 8-bit values, each with its own
per-image parameters, statically shaped so they run inside a compiled
training step on any backend (`keras_sanm/methods/dividemix/device_views.py` composes them).
Each follows Pillow's arithmetic (truncation, look-up tables, pixel
centres) so a result is Pillow's up to float rounding at integer
boundaries; `tests/test_image_ops.py` compares every one with Pillow.

Keras' own image layers (`keras.layers.RandAugment`, `AutoContrast`,
`Equalization`, ...) draw their magnitudes from their own ranges and
factor conventions, not the reference's policies, and
`keras.ops.image.affine_transform` rounds coordinates where Pillow floors
them and has no bicubic mode; hence these few functions.
"""

from __future__ import annotations

import numpy as np
from keras import ops

from keras_sanm.backend import bin_counts

GREY = 128.0


def to_pixels(values):
    """Truncate and clip to 8-bit values, as Pillow's float-to-uint8 casts do."""
    return ops.clip(ops.floor(values), 0.0, 255.0)


def _per_image(values, images):
    """A `(B,)` parameter broadcast against `(B, H, W, C)` images."""
    return ops.reshape(ops.cast(values, images.dtype), (-1, 1, 1, 1))


# ----------------------------------------------------------------- geometry
def _gather(images, rows, cols):
    """`images[b, rows[b, i, j], cols[b, i, j]]` for integer index maps (clipped inside)."""
    batch, height, width, channels = images.shape
    rows = ops.clip(rows, 0, height - 1)
    cols = ops.clip(cols, 0, width - 1)
    base = ops.reshape(ops.arange(batch, dtype="int32") * (height * width), (-1, 1, 1))
    flat = ops.reshape(images, (batch * height * width, channels))
    index = ops.reshape(base + rows * width + cols, (-1,))
    return ops.reshape(ops.take(flat, index, axis=0), (batch, height, width, channels))


def _source_coordinates(matrices, height: int, width: int):
    """Pillow's AFFINE map: output pixel centre `(x + .5, y + .5)` to input coordinates.

    `matrices`: `(B, 6)` rows `(a, b, c, d, e, f)`, input = `(a x + b y + c,
    d x + e y + f)` as in `Image.transform(size, Image.AFFINE, ...)`.
    """
    ys, xs = np.meshgrid(np.arange(height) + 0.5, np.arange(width) + 0.5, indexing="ij")
    xs = ops.convert_to_tensor(xs[None], "float32")
    ys = ops.convert_to_tensor(ys[None], "float32")
    m = [ops.reshape(matrices[:, i], (-1, 1, 1)) for i in range(6)]
    return m[0] * xs + m[1] * ys + m[2], m[3] * xs + m[4] * ys + m[5]


def _fixed_point_coordinates(matrices, height: int, width: int):
    """Pillow's nearest-neighbour AFFINE map, in its 16.16 fixed point.

    Pillow rounds the coefficients to multiples of 1/65536 and floors the
    sums; float coordinates would differ wherever a source coordinate is
    an exact integer (e.g. a shear of 0.2 at x = 7). Every term is an
    integer below 2**24, so float32 holds it exactly.
    """
    def fixed(v):
        return ops.floor(v * 65536.0 + 0.5)

    m = [ops.reshape(matrices[:, i], (-1, 1, 1)) for i in range(6)]
    ys, xs = np.meshgrid(np.arange(height), np.arange(width), indexing="ij")
    xs = ops.convert_to_tensor(xs[None], "float32")
    ys = ops.convert_to_tensor(ys[None], "float32")
    x = fixed(m[2] + 0.5 * m[0] + 0.5 * m[1]) + xs * fixed(m[0]) + ys * fixed(m[1])
    y = fixed(m[5] + 0.5 * m[3] + 0.5 * m[4]) + xs * fixed(m[3]) + ys * fixed(m[4])
    return (ops.cast(ops.floor(y / 65536.0), "int32"),
            ops.cast(ops.floor(x / 65536.0), "int32"))


def _inside(x, y, height: int, width: int):
    return (x >= 0.0) & (x < float(width)) & (y >= 0.0) & (y < float(height))


def _cubic_weights(t, a: float = -1.0):
    """The cubic kernel of Pillow's `transform` (a = -1) at offsets `t - (-1, 0, 1, 2)`."""
    def kernel(d):
        d = ops.abs(d)
        near = ((a + 2.0) * d - (a + 3.0)) * d * d + 1.0
        far = ((a * d - 5.0 * a) * d + 8.0 * a) * d - 4.0 * a
        return ops.where(d < 1.0, near, ops.where(d < 2.0, far, 0.0))

    return [kernel(t + 1.0), kernel(t), kernel(t - 1.0), kernel(t - 2.0)]


def affine(images, matrices, interpolation: str = "nearest", fill: float = 0.0):
    """`Image.transform(size, AFFINE, matrix, resample, fillcolor=fill)` per image.

    Args:
        images: `(B, H, W, C)` float, 8-bit values.
        matrices: `(B, 6)` Pillow affine coefficients (output -> input).
        interpolation: `"nearest"` or `"bicubic"`.
        fill: value of output pixels whose source centre lies outside.

    Returns:
        `(B, H, W, C)` float, 8-bit values.
    """
    _, height, width, _ = images.shape
    if interpolation == "nearest":
        rows, cols = _fixed_point_coordinates(matrices, height, width)
        inside = (rows >= 0) & (rows < height) & (cols >= 0) & (cols < width)
        sampled = _gather(images, rows, cols)
    elif interpolation == "bicubic":
        x, y = _source_coordinates(ops.cast(matrices, "float32"), height, width)
        inside = _inside(x, y, height, width)
        # Pillow: taps at floor(v - .5) - 1 .. + 2, clamped to the image.
        x, y = x - 0.5, y - 0.5
        x0, y0 = ops.floor(x), ops.floor(y)
        wx, wy = _cubic_weights(x - x0), _cubic_weights(y - y0)
        x0, y0 = ops.cast(x0, "int32"), ops.cast(y0, "int32")
        sampled = 0.0
        for i in range(4):
            row = 0.0
            for j in range(4):
                taps = _gather(images, y0 + (i - 1), x0 + (j - 1))
                row = row + ops.expand_dims(wx[j], -1) * taps
            sampled = sampled + ops.expand_dims(wy[i], -1) * row
        sampled = to_pixels(sampled)
    else:
        raise ValueError(f"interpolation must be 'nearest' or 'bicubic'; got {interpolation!r}.")
    return ops.where(ops.expand_dims(inside, -1), sampled, ops.cast(fill, images.dtype))


def rotation_matrices(degrees, height: int, width: int):
    """Pillow's `Image.rotate(degrees)` (counter-clockwise about the centre) as `(B, 6)`."""
    angle = -ops.cast(degrees, "float32") * (np.pi / 180.0)
    cos, sin = ops.cos(angle), ops.sin(angle)
    cx, cy = width / 2.0, height / 2.0
    c = cos * -cx + sin * -cy + cx
    f = -sin * -cx + cos * -cy + cy
    return ops.stack([cos, sin, c, -sin, cos, f], axis=1)


def shift_matrices(dx, dy):
    """`(B, 6)` translations: output `(x, y)` reads input `(x + dx, y + dy)`."""
    one, zero = ops.ones_like(dx), ops.zeros_like(dx)
    return ops.stack([one, zero, dx, zero, one, dy], axis=1)


def shear_matrices(shear_x, shear_y):
    """`(B, 6)` shears `(1, sx, 0, sy, 1, 0)` (Pillow's shearX / shearY matrices)."""
    one, zero = ops.ones_like(shear_x), ops.zeros_like(shear_x)
    return ops.stack([one, shear_x, zero, shear_y, one, zero], axis=1)


def crop_and_flip(images, tops, lefts, flips, padding: int = 4):
    """Crops of the zero-padded images at `(tops, lefts)`, mirrored where `flips`.

    The weak view (`keras_sanm.data.augment.weak_augment`) with given draws.
    """
    batch, height, width, _ = images.shape
    rows = ops.reshape(ops.arange(height, dtype="int32"), (1, -1, 1))
    cols = ops.reshape(ops.arange(width, dtype="int32"), (1, 1, -1))
    cols = ops.where(ops.reshape(flips, (-1, 1, 1)), width - 1 - cols, cols)
    rows = rows + ops.reshape(ops.cast(tops, "int32"), (-1, 1, 1)) - padding
    cols = cols + ops.reshape(ops.cast(lefts, "int32"), (-1, 1, 1)) - padding
    rows = ops.broadcast_to(rows, (batch, height, width))
    cols = ops.broadcast_to(cols, (batch, height, width))
    inside = (rows >= 0) & (rows < height) & (cols >= 0) & (cols < width)
    return ops.where(ops.expand_dims(inside, -1), _gather(images, rows, cols), 0.0)


# ----------------------------------------------------------------- colour
def grey_levels(images):
    """Pillow's `convert("L")`: `(R*19595 + G*38470 + B*7471 + 2**15) >> 16`, `(B, H, W, 1)`."""
    weights = ops.convert_to_tensor([19595.0, 38470.0, 7471.0], images.dtype)
    return ops.floor((ops.sum(images * weights, axis=-1, keepdims=True) + 32768.0) / 65536.0)


def blend(degenerate, images, factors):
    """`Image.blend(degenerate, images, factor)` per image (what `ImageEnhance` does)."""
    return to_pixels(degenerate + _per_image(factors, images) * (images - degenerate))


def enhance_color(images, factors):
    """`ImageEnhance.Color(img).enhance(factor)`: blend with the grey image."""
    return blend(grey_levels(images), images, factors)


def enhance_brightness(images, factors):
    """`ImageEnhance.Brightness(img).enhance(factor)`: blend with black."""
    return blend(ops.zeros_like(images), images, factors)


def enhance_contrast(images, factors):
    """`ImageEnhance.Contrast(img).enhance(factor)`: blend with the rounded mean grey level."""
    mean = ops.mean(grey_levels(images), axis=(1, 2, 3), keepdims=True)
    return blend(ops.floor(mean + 0.5) + ops.zeros_like(images), images, factors)


def smooth(images):
    """Pillow's `ImageFilter.SMOOTH` (3x3, centre 5, all others 1, over 13; edges kept)."""
    _, height, width, _ = images.shape
    padded = ops.pad(images, ((0, 0), (1, 1), (1, 1), (0, 0)))
    total = 4.0 * images
    for dy in range(3):
        for dx in range(3):
            total = total + padded[:, dy : dy + height, dx : dx + width, :]
    inner = ops.floor(total / 13.0 + 0.5)
    rows = ops.reshape(ops.arange(height), (1, -1, 1, 1))
    cols = ops.reshape(ops.arange(width), (1, 1, -1, 1))
    interior = (rows > 0) & (rows < height - 1) & (cols > 0) & (cols < width - 1)
    return ops.where(interior, inner, images)


def enhance_sharpness(images, factors):
    """`ImageEnhance.Sharpness(img).enhance(factor)`: blend with the smoothed image."""
    return blend(smooth(images), images, factors)


def posterize(images, bits):
    """`ImageOps.posterize(img, bits)`: keep the `bits` high bits."""
    step = _per_image(ops.power(2.0, 8.0 - ops.cast(bits, "float32")), images)
    return ops.floor(images / step) * step


def solarize(images, thresholds):
    """`ImageOps.solarize(img, threshold)`: invert the values at or above the threshold."""
    return ops.where(images < _per_image(thresholds, images), images, 255.0 - images)


def invert(images):
    """`ImageOps.invert(img)`."""
    return 255.0 - images


def autocontrast(images):
    """`ImageOps.autocontrast(img)`: stretch each channel's `[min, max]` to `[0, 255]`."""
    low = ops.min(images, axis=(1, 2), keepdims=True)
    high = ops.max(images, axis=(1, 2), keepdims=True)
    scale = 255.0 / ops.maximum(high - low, 1.0)
    stretched = ops.clip(ops.floor((images - low) * scale), 0.0, 255.0)
    return ops.where(high > low, stretched, images)


def equalize(images):
    """`ImageOps.equalize(img)`: Pillow's per-channel histogram equalisation.

    Per channel, with histogram `h` and `step = (sum(h) - h[last used
    value]) // 255`, value `i` maps to `(step // 2 + sum(h[:i])) // step`;
    channels with one used value or `step == 0` stay as they are.
    """
    batch, height, width, channels = images.shape
    values = ops.cast(ops.transpose(images, (0, 3, 1, 2)), "int32")
    values = ops.reshape(values, (batch * channels, height * width))
    offsets = ops.reshape(ops.arange(batch * channels, dtype="int32") * 256, (-1, 1))
    counts = bin_counts(ops.reshape(values + offsets, (-1,)), batch * channels * 256)
    counts = ops.cast(ops.reshape(counts, (batch * channels, 256)), "float32")
    levels = ops.arange(256, dtype="float32")
    used = counts > 0
    last = ops.max(ops.where(used, levels, -1.0), axis=1, keepdims=True)
    last_count = ops.sum(ops.where(levels == last, counts, 0.0), axis=1, keepdims=True)
    step = ops.floor((float(height * width) - last_count) / 255.0)
    below = ops.cumsum(counts, axis=1) - counts
    safe_step = ops.maximum(step, 1.0)
    table = ops.floor((ops.floor(step / 2.0) + below) / safe_step)
    keep = (ops.sum(ops.cast(used, "float32"), axis=1, keepdims=True) <= 1.0) | (step < 1.0)
    table = ops.where(keep, levels, ops.minimum(table, 255.0))
    mapped = ops.take_along_axis(table, values, axis=1)
    mapped = ops.reshape(mapped, (batch, channels, height, width))
    return ops.cast(ops.transpose(mapped, (0, 2, 3, 1)), images.dtype)


def cutout(images, centre_x, centre_y, size: int = 16, value: float = 127.0):
    """Pillow's `ImageDraw.rectangle` Cutout at uniform centres (both corners included).

    `x0 = int(max(0, cx - size / 2))`, `x1 = min(W, x0 + size)`; pixels
    `x0..x1` (and the same in y) take `value`.
    """
    _, height, width, _ = images.shape
    x0 = ops.floor(ops.maximum(0.0, centre_x - size / 2.0))
    y0 = ops.floor(ops.maximum(0.0, centre_y - size / 2.0))
    x1, y1 = ops.minimum(float(width), x0 + size), ops.minimum(float(height), y0 + size)
    rows = ops.reshape(ops.arange(height, dtype="float32"), (1, -1, 1, 1))
    cols = ops.reshape(ops.arange(width, dtype="float32"), (1, 1, -1, 1))
    box = ((rows >= _per_image(y0, images)) & (rows <= _per_image(y1, images))
           & (cols >= _per_image(x0, images)) & (cols <= _per_image(x1, images)))
    return ops.where(box, value, images)
