"""The training views of SANM(DivideMix), drawn on the device for a whole batch.

`weak_view`, `autoaugment_view` and `randaugment_view` are the policies of
`keras_sanm/data/strong_augment.py` (the reference's transforms, run with
Pillow one image at a time on the host) written in `keras.ops` with
`keras.random` draws: each image draws its own sub-policy, operations,
magnitudes and signs from the same distributions, and the operations are
Pillow's (`keras_sanm/methods/dividemix/image_ops.py`). Statically shaped: every candidate
operation of a slot runs on the whole batch and each image keeps the one it
drew, so a view is a fixed graph inside the compiled step. A trainer with
`view_augmentation="device"` calls `training_views` in its step.

Example:
>>> seed = keras.random.SeedGenerator(0)
>>> views = training_views(images, ("autoaugment", "randaugment"), seed)
"""

from __future__ import annotations

import numpy as np
from keras import ops, random

from keras_sanm.data.strong_augment import CIFAR10_POLICY, RANDAUGMENT_POOL
from keras_sanm.methods.dividemix import image_ops

_LEVELS = 10


def _draw_sign(batch: int, seed):
    """+1 or -1 with probability 1/2 each (the host's `_sign`)."""
    return ops.where(random.uniform((batch,), seed=seed) < 0.5, 1.0, -1.0)


def _chosen(table, index):
    """`table[index]` for a NumPy table and a per-image integer index."""
    return ops.take(ops.convert_to_tensor(np.asarray(table, np.float32)), index, axis=0)


# ----------------------------------------------------------- one operation
def _geometric(images, name, value, interpolation, fill):
    batch, height, width, _ = images.shape
    zero = ops.zeros((batch,), "float32")
    if name == "rotate":
        matrices = image_ops.rotation_matrices(value, height, width)
    elif name == "shearX":
        matrices = image_ops.shear_matrices(value, zero)
    elif name == "shearY":
        matrices = image_ops.shear_matrices(zero, value)
    elif name == "translateX":
        matrices = image_ops.shift_matrices(value, zero)
    else:  # translateY
        matrices = image_ops.shift_matrices(zero, value)
    return image_ops.affine(images, matrices, interpolation, fill)


_ENHANCE = {
    "color": image_ops.enhance_color,
    "contrast": image_ops.enhance_contrast,
    "sharpness": image_ops.enhance_sharpness,
    "brightness": image_ops.enhance_brightness,
}
_GEOMETRIC = ("rotate", "shearX", "shearY", "translateX", "translateY")


def _apply(images, name, value, geometry):
    """Operation `name` with its per-image parameter `value` (signed where it has a sign).

    `value`: the enhancement factor, the angle, shear or shift, the bits of
    posterize or the threshold of solarize; unused by the others.
    """
    if name in _GEOMETRIC:
        interpolation, fill = geometry[name]
        return _geometric(images, name, value, interpolation, fill)
    if name in _ENHANCE:
        return _ENHANCE[name](images, value)
    if name == "posterize":
        return image_ops.posterize(images, value)
    if name == "solarize":
        return image_ops.solarize(images, value)
    if name == "autocontrast":
        return image_ops.autocontrast(images)
    if name == "equalize":
        return image_ops.equalize(images)
    if name == "invert":
        return image_ops.invert(images)
    if name == "identity":
        return images
    raise ValueError(f"Unknown operation {name!r}.")


def _signed_value(plus, minus, index, sign):
    """`plus[index]` where the image drew +1, else `minus[index]`.

    The parameters of both signs are tabulated in double precision, as the
    host computes them, so an enhancement factor `1 - 0.6` is float32(0.4),
    not 1 - float32(0.6).
    """
    return ops.where(sign > 0, _chosen(plus, index), _chosen(minus, index))


def _select(images, candidates, chosen, applied):
    """Each image's drawn operation result where it applies, else the image."""
    out = images
    for op_id, candidate in candidates:
        keep = ops.reshape(applied & (chosen == op_id), (-1, 1, 1, 1))
        out = ops.where(keep, candidate, out)
    return out


# ------------------------------------------------------------- AutoAugment
def _autoaugment_values(name: str, level: int, size: int) -> tuple[float, float]:
    """The parameter of an AutoAugment operation at level 0..9, for signs +1 and -1."""
    def span(low, high):
        return float(np.linspace(low, high, _LEVELS)[level])

    if name in ("shearX", "shearY"):
        return span(0.0, 0.3), -span(0.0, 0.3)
    if name in ("translateX", "translateY"):
        return span(0.0, 150 / 331) * size, -span(0.0, 150 / 331) * size
    if name == "rotate":  # the policy's rotations are unsigned
        return span(0.0, 30.0), span(0.0, 30.0)
    if name in _ENHANCE:
        return 1.0 + span(0.0, 0.9), 1.0 - span(0.0, 0.9)
    if name == "posterize":
        return (float(int(np.round(span(8, 4)))),) * 2
    if name == "solarize":
        return span(256, 0), span(256, 0)
    return 0.0, 0.0  # autocontrast, equalize, invert: no parameter


_AUTOAUGMENT_GEOMETRY = {
    "shearX": ("bicubic", image_ops.GREY), "shearY": ("bicubic", image_ops.GREY),
    "translateX": ("nearest", image_ops.GREY), "translateY": ("nearest", image_ops.GREY),
    "rotate": ("nearest", image_ops.GREY),
}


AUTOAUGMENT_OPERATIONS = tuple(sorted({row[i] for row in CIFAR10_POLICY for i in (1, 4)}))


def autoaugment_draws(batch: int, height: int, width: int, seed) -> list:
    """Each image's AutoAugment draws: per slot, the operation, its parameter, applied or not.

    Returns:
        Two `(op_index, value, applied)` triples (slot 1, slot 2): indices
        into `AUTOAUGMENT_OPERATIONS`, signed parameters, booleans; `(B,)` each.
    """
    policy = ops.cast(random.randint((batch,), 0, len(CIFAR10_POLICY), seed=seed), "int32")
    draws = []
    for slot in (0, 3):
        probability = _chosen([row[slot] for row in CIFAR10_POLICY], policy)
        applied = random.uniform((batch,), seed=seed) < probability
        sign = _draw_sign(batch, seed)
        op_index = _chosen(
            [AUTOAUGMENT_OPERATIONS.index(row[slot + 1]) for row in CIFAR10_POLICY], policy)
        values = [_autoaugment_values(row[slot + 1], row[slot + 2],
                                      width if row[slot + 1] == "translateX" else height)
                  for row in CIFAR10_POLICY]
        value = _signed_value([v[0] for v in values], [v[1] for v in values], policy, sign)
        draws.append((op_index, value, applied))
    return draws


def autoaugment(images, seed):
    """The CIFAR-10 AutoAugment policy, one uniformly drawn sub-policy per image.

    Args:
        images: `(B, H, W, C)` float32 holding 8-bit values.
        seed: a `keras.random.SeedGenerator` (or int).

    Returns:
        `(B, H, W, C)` float32 holding 8-bit values.
    """
    batch, height, width, _ = images.shape
    for slot, (op_index, value, applied) in zip((1, 4), autoaugment_draws(batch, height, width, seed)):
        candidates = [
            (float(AUTOAUGMENT_OPERATIONS.index(name)),
             _apply(images, name, value, _AUTOAUGMENT_GEOMETRY))
            for name in sorted({row[slot] for row in CIFAR10_POLICY})  # this slot's operations
        ]
        images = _select(images, candidates, op_index, applied)
    return images


# -------------------------------------------------------------- RandAugment
def _randaugment_values(name: str, strength: int, size: int) -> tuple[float, float]:
    """RandAugment-MC's parameter of an operation at strength 1..9, for signs +1 and -1."""
    value = _randaugment_magnitude(name, strength, size)
    signed = name in _GEOMETRIC
    return value, -value if signed else value


def _randaugment_magnitude(name: str, strength: int, size: int) -> float:
    """RandAugment-MC's magnitude of an operation at strength 1..9 (unsigned)."""
    return {
        "brightness": strength * 0.9 / 10 + 0.05, "color": strength * 0.9 / 10 + 0.05,
        "contrast": strength * 0.9 / 10 + 0.05, "sharpness": strength * 0.9 / 10 + 0.05,
        "posterize": float(int(strength * 4 / 10) + 4),
        "rotate": float(int(strength * 30 / 10)),
        "shearX": strength * 0.3 / 10, "shearY": strength * 0.3 / 10,
        "solarize": float(256 - int(strength * 256 / 10)),
        # The host's int(real * sign * size): truncation towards zero, so the
        # unsigned shift is truncated and the sign applied after.
        "translateX": float(int(strength * 0.3 / 10 * size)),
        "translateY": float(int(strength * 0.3 / 10 * size)),
    }.get(name, 0.0)


_RANDAUGMENT_GEOMETRY = {
    "shearX": ("nearest", 0.0), "shearY": ("nearest", 0.0),
    "translateX": ("nearest", 0.0), "translateY": ("nearest", 0.0),
    "rotate": ("nearest", 0.0),
}


def randaugment_draws(batch: int, height: int, width: int, seed, num_ops: int = 2):
    """Each image's RandAugment-MC draws.

    Returns:
        `(rounds, (centre_x, centre_y))`: `num_ops` triples `(op_index,
        value, applied)` (indices into `RANDAUGMENT_POOL`, signed
        parameters, booleans) and the Cutout centres; `(B,)` each.
    """
    pool = list(RANDAUGMENT_POOL)
    # table[sign][op * 10 + strength]: the host's parameters, integer truncations included.
    rows = [_randaugment_values(name, v, width if name == "translateX" else height)
            for name in pool for v in range(10)]
    rounds = []
    for _ in range(num_ops):
        op_index = ops.cast(random.randint((batch,), 0, len(pool), seed=seed), "int32")
        strength = ops.cast(random.randint((batch,), 1, 10, seed=seed), "int32")
        applied = random.uniform((batch,), seed=seed) < 0.5
        sign = _draw_sign(batch, seed)
        value = _signed_value([r[0] for r in rows], [r[1] for r in rows],
                              op_index * 10 + strength, sign)
        rounds.append((ops.cast(op_index, "float32"), value, applied))
    centre_x = random.uniform((batch,), 0.0, float(width), seed=seed)
    centre_y = random.uniform((batch,), 0.0, float(height), seed=seed)
    return rounds, (centre_x, centre_y)


def randaugment(images, seed, num_ops: int = 2, cutout: int = 16):
    """RandAugment-MC (`num_ops` draws, each applied with p 0.5) then Cutout.

    Args:
        images: `(B, H, W, C)` float32 holding 8-bit values.
        seed: a `keras.random.SeedGenerator` (or int).
        num_ops: operations drawn per image, with replacement.
        cutout: side of the grey square.

    Returns:
        `(B, H, W, C)` float32 holding 8-bit values.
    """
    batch, height, width, _ = images.shape
    rounds, (centre_x, centre_y) = randaugment_draws(batch, height, width, seed, num_ops)
    for op_index, value, applied in rounds:
        candidates = [(float(index), _apply(images, name, value, _RANDAUGMENT_GEOMETRY))
                      for index, name in enumerate(RANDAUGMENT_POOL)]
        images = _select(images, candidates, op_index, applied)
    return image_ops.cutout(images, centre_x, centre_y, cutout)


# ------------------------------------------------------------------- views
def weak_view(images, seed, padding: int = 4):
    """Pad-4 random crop and horizontal flip (`keras_sanm.data.augment.weak_augment`)."""
    batch = images.shape[0]
    tops = random.randint((batch,), 0, 2 * padding + 1, seed=seed)
    lefts = random.randint((batch,), 0, 2 * padding + 1, seed=seed)
    flips = random.uniform((batch,), seed=seed) < 0.5
    return image_ops.crop_and_flip(images, tops, lefts, flips, padding)


def autoaugment_view(images, seed):
    """Weak crop/flip, then the CIFAR-10 AutoAugment policy (the `"autoaugment"` view)."""
    return autoaugment(weak_view(images, seed), seed)


def randaugment_view(images, seed):
    """Weak crop/flip, then RandAugment-MC(2) and Cutout 16 (the `"randaugment"` view)."""
    return randaugment(weak_view(images, seed), seed)


DEVICE_VIEWS = {
    "weak": weak_view,
    "autoaugment": autoaugment_view,
    "randaugment": randaugment_view,
}


def training_views(images, names, seed, pixel_scale: float | None = None):
    """The views `names` of a batch of raw images, drawn on the device.

    Args:
        images: `(B, H, W, C)` raw images: uint8, or float in `[0, pixel_scale]`.
        names: one view name per view (`"weak"`, `"autoaugment"`,
            `"randaugment"`, `"none"`).
        seed: a `keras.random.SeedGenerator`.
        pixel_scale: 255 for uint8 (default), 1.0 for float images in `[0, 1]`.

    Returns:
        A list of `(B, H, W, C)` float32 views in the images' own scale.
    """
    unknown = [name for name in names if name != "none" and name not in DEVICE_VIEWS]
    if unknown:
        raise ValueError(
            f"No device version of the views {unknown}; device views: "
            f"{sorted(DEVICE_VIEWS) + ['none']}.")
    scale = 255.0 if pixel_scale is None else float(pixel_scale)
    raw = ops.cast(images, "float32")
    # The host path hands Pillow 8-bit pixels too (`CoDivideData`).
    pixels = ops.round(raw * (255.0 / scale))
    # One call per view name on all its copies stacked (4 AutoAugment views
    # of B images: one policy on 4B rows): a smaller graph to compile, larger
    # batches to run, the same independent draws per row.
    batch = images.shape[0]
    drawn = {}
    for name in dict.fromkeys(names):
        if name == "none":
            continue
        copies = sum(1 for n in names if n == name)
        views = DEVICE_VIEWS[name](ops.concatenate([pixels] * copies, axis=0), seed)
        drawn[name] = [views[i * batch : (i + 1) * batch] * (scale / 255.0)
                       for i in range(copies)]
    return [raw if name == "none" else drawn[name].pop(0) for name in names]
