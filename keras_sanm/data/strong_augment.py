"""Strong augmentation views of the SANM CIFAR pipeline (docs/algorithms.md, "SANM").

`autoaugment_view`: weak crop/flip, then the CIFAR-10 AutoAugment policy.
`randaugment_view`: weak crop/flip, then RandAugment-MC (two ops, random
magnitudes) and a 16x16 grey Cutout. `warmup_view`: the SANM code's warm-up
transform (colour jitter, crop/flip, random affine). All work on uint8
batches with Pillow, one image at a time, driven by a NumPy generator.
"""

from __future__ import annotations

import numpy as np
from PIL import Image, ImageDraw, ImageEnhance, ImageOps

from keras_sanm.data.augment import weak_augment

_GREY = (128, 128, 128)
_LEVELS = 10


def _sign(rng) -> int:
    return 1 if rng.random() < 0.5 else -1


def _affine(img, matrix, resample, fill):
    return img.transform(img.size, Image.AFFINE, matrix, resample, fillcolor=fill)


def _rotate_grey(img, degrees):
    rotated = img.convert("RGBA").rotate(degrees)
    grey = Image.new("RGBA", rotated.size, _GREY + (128,))
    return Image.composite(rotated, grey, rotated).convert(img.mode)


def _aa_op(name: str, level: int, img, rng):
    """One AutoAugment operation at magnitude index `level` (0..9)."""
    def span(low, high):
        return np.linspace(low, high, _LEVELS)[level]

    if name in ("shearX", "shearY"):
        v = span(0.0, 0.3) * _sign(rng)
        matrix = (1, v, 0, 0, 1, 0) if name == "shearX" else (1, 0, 0, v, 1, 0)
        return _affine(img, matrix, Image.BICUBIC, _GREY)
    if name in ("translateX", "translateY"):
        v = span(0.0, 150 / 331) * _sign(rng)
        matrix = (
            (1, 0, v * img.size[0], 0, 1, 0)
            if name == "translateX"
            else (1, 0, 0, 0, 1, v * img.size[1])
        )
        return _affine(img, matrix, Image.NEAREST, _GREY)
    if name == "rotate":
        return _rotate_grey(img, span(0.0, 30.0))
    if name in ("color", "contrast", "sharpness", "brightness"):
        enhancer = {
            "color": ImageEnhance.Color,
            "contrast": ImageEnhance.Contrast,
            "sharpness": ImageEnhance.Sharpness,
            "brightness": ImageEnhance.Brightness,
        }[name]
        return enhancer(img).enhance(1.0 + span(0.0, 0.9) * _sign(rng))
    if name == "posterize":
        return ImageOps.posterize(img, int(np.round(span(8, 4))))
    if name == "solarize":
        return ImageOps.solarize(img, span(256, 0))
    if name == "autocontrast":
        return ImageOps.autocontrast(img)
    if name == "equalize":
        return ImageOps.equalize(img)
    if name == "invert":
        return ImageOps.invert(img)
    raise ValueError(f"Unknown AutoAugment operation {name!r}.")


# (p1, op1, m1, p2, op2, m2): the CIFAR-10 AutoAugment policy.
CIFAR10_POLICY = (
    (0.1, "invert", 7, 0.2, "contrast", 6),
    (0.7, "rotate", 2, 0.3, "translateX", 9),
    (0.8, "sharpness", 1, 0.9, "sharpness", 3),
    (0.5, "shearY", 8, 0.7, "translateY", 9),
    (0.5, "autocontrast", 8, 0.9, "equalize", 2),
    (0.2, "shearY", 7, 0.3, "posterize", 7),
    (0.4, "color", 3, 0.6, "brightness", 7),
    (0.3, "sharpness", 9, 0.7, "brightness", 9),
    (0.6, "equalize", 5, 0.5, "equalize", 1),
    (0.6, "contrast", 7, 0.6, "sharpness", 5),
    (0.7, "color", 7, 0.5, "translateX", 8),
    (0.3, "equalize", 7, 0.4, "autocontrast", 8),
    (0.4, "translateY", 3, 0.2, "sharpness", 6),
    (0.9, "brightness", 6, 0.2, "color", 8),
    (0.5, "solarize", 2, 0.0, "invert", 3),
    (0.2, "equalize", 0, 0.6, "autocontrast", 0),
    (0.2, "equalize", 8, 0.6, "equalize", 4),
    (0.9, "color", 9, 0.6, "equalize", 6),
    (0.8, "autocontrast", 4, 0.2, "solarize", 8),
    (0.1, "brightness", 3, 0.7, "color", 0),
    (0.4, "solarize", 5, 0.9, "autocontrast", 3),
    (0.9, "translateY", 9, 0.7, "translateY", 9),
    (0.9, "autocontrast", 2, 0.8, "solarize", 3),
    (0.8, "equalize", 8, 0.1, "invert", 3),
    (0.7, "translateY", 9, 0.9, "autocontrast", 1),
)


def autoaugment_image(img: Image.Image, rng: np.random.Generator) -> Image.Image:
    """One uniformly chosen sub-policy of `CIFAR10_POLICY` applied to a PIL image."""
    p1, op1, m1, p2, op2, m2 = CIFAR10_POLICY[rng.integers(len(CIFAR10_POLICY))]
    if rng.random() < p1:
        img = _aa_op(op1, m1, img, rng)
    if rng.random() < p2:
        img = _aa_op(op2, m2, img, rng)
    return img


def _ra_op(name: str, v: int, img, rng):
    """One RandAugment-MC operation with integer strength `v` in 1..9."""
    def real(max_value, bias=0.0):
        return v * max_value / 10.0 + bias

    def integer(max_value, bias=0):
        return int(v * max_value / 10) + bias

    if name == "autocontrast":
        return ImageOps.autocontrast(img)
    if name in ("brightness", "color", "contrast", "sharpness"):
        enhancer = {
            "brightness": ImageEnhance.Brightness,
            "color": ImageEnhance.Color,
            "contrast": ImageEnhance.Contrast,
            "sharpness": ImageEnhance.Sharpness,
        }[name]
        return enhancer(img).enhance(real(0.9, 0.05))
    if name == "equalize":
        return ImageOps.equalize(img)
    if name == "identity":
        return img
    if name == "posterize":
        return ImageOps.posterize(img, integer(4, 4))
    if name == "rotate":
        return img.rotate(integer(30) * _sign(rng))
    if name in ("shearX", "shearY"):
        s = real(0.3) * _sign(rng)
        matrix = (1, s, 0, 0, 1, 0) if name == "shearX" else (1, 0, 0, s, 1, 0)
        return _affine(img, matrix, Image.NEAREST, None)
    if name == "solarize":
        return ImageOps.solarize(img, 256 - integer(256))
    if name in ("translateX", "translateY"):
        size = img.size[0] if name == "translateX" else img.size[1]
        shift = int(real(0.3) * _sign(rng) * size)
        matrix = (1, 0, shift, 0, 1, 0) if name == "translateX" else (1, 0, 0, 0, 1, shift)
        return _affine(img, matrix, Image.NEAREST, None)
    raise ValueError(f"Unknown RandAugment operation {name!r}.")


RANDAUGMENT_POOL = (
    "autocontrast", "brightness", "color", "contrast", "equalize", "identity",
    "posterize", "rotate", "sharpness", "shearX", "shearY", "solarize",
    "translateX", "translateY",
)


def cutout_image(img: Image.Image, size: int, rng: np.random.Generator) -> Image.Image:
    """A `size`-pixel grey (127) square centred at a uniform point, clipped at borders."""
    width, height = img.size
    x0 = int(max(0.0, rng.uniform(0, width) - size / 2.0))
    y0 = int(max(0.0, rng.uniform(0, height) - size / 2.0))
    x1, y1 = int(min(width, x0 + size)), int(min(height, y0 + size))
    img = img.copy()
    ImageDraw.Draw(img).rectangle((x0, y0, x1, y1), fill=(127, 127, 127))
    return img


def randaugment_image(img, rng, num_ops: int = 2, cutout: int = 16):
    """RandAugment-MC: `num_ops` draws with replacement, each applied with p 0.5, then Cutout."""
    for index in rng.integers(len(RANDAUGMENT_POOL), size=num_ops):
        strength = int(rng.integers(1, 10))
        if rng.random() < 0.5:
            img = _ra_op(RANDAUGMENT_POOL[index], strength, img, rng)
    return cutout_image(img, cutout, rng)


def _per_image(images: np.ndarray, rng, fn) -> np.ndarray:
    """`fn` on each image of a uint8 RGB batch as a PIL image (`CoDivideData`
    hands float images over as uint8, with the scale of the whole set)."""
    images = np.asarray(images)
    if images.dtype != np.uint8 or images.ndim != 4 or images.shape[-1] != 3:
        raise ValueError(
            "Strong augmentation works on uint8 RGB images (N, H, W, 3); got "
            f"{images.dtype} with shape {images.shape}. Pass images before "
            "standardisation: the model standardises them itself.")
    return np.stack([np.asarray(fn(Image.fromarray(image), rng)) for image in images])


def autoaugment_view(images: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """Weak crop/flip then CIFAR-10 AutoAugment, per image of a uint8 batch.

    Args:
        images: `(B, H, W, 3)` uint8.
        rng: NumPy generator.

    Returns:
        `(B, H, W, 3)` uint8.

    Example:
    >>> autoaugment_view(np.zeros((2, 32, 32, 3), np.uint8), np.random.default_rng(0)).shape
    (2, 32, 32, 3)
    """
    return _per_image(weak_augment(images, rng), rng, autoaugment_image)


def randaugment_view(images: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """Weak crop/flip then RandAugment-MC(2, 10) and Cutout 16, per image.

    Args:
        images: `(B, H, W, 3)` uint8.
        rng: NumPy generator.

    Returns:
        `(B, H, W, 3)` uint8.
    """
    return _per_image(weak_augment(images, rng), rng, randaugment_image)


def _color_jitter(img, rng, strength: float = 0.4):
    """Brightness, contrast, saturation (factors U(1 -/+ s)) and hue (U(-s, s)), random order."""
    def hue(image, shift):
        h, s_, v = image.convert("HSV").split()
        h = h.point(lambda p: (p + int(round(shift * 255))) % 256)
        return Image.merge("HSV", (h, s_, v)).convert("RGB")

    adjustments = [
        lambda im, f: ImageEnhance.Brightness(im).enhance(f),
        lambda im, f: ImageEnhance.Contrast(im).enhance(f),
        lambda im, f: ImageEnhance.Color(im).enhance(f),
    ]
    factors = rng.uniform(1 - strength, 1 + strength, 3)
    shift = rng.uniform(-strength, strength)
    for index in rng.permutation(4):
        img = hue(img, shift) if index == 3 else adjustments[index](img, factors[index])
    return img


def _random_affine(img, rng, degrees=15.0, translate=0.1, scale=(2 / 3, 3 / 2), shear=0.1):
    """Rotation, translation, scale and x/y shear about the centre; nearest, black fill."""
    width, height = img.size
    angle = np.deg2rad(rng.uniform(-degrees, degrees))
    tx = np.round(rng.uniform(-translate * width, translate * width))
    ty = np.round(rng.uniform(-translate * height, translate * height))
    factor = rng.uniform(*scale)
    sx, sy = np.deg2rad(rng.uniform(-shear, shear, 2))
    cx, cy = width * 0.5, height * 0.5
    rotation = np.array([[np.cos(angle), -np.sin(angle)], [np.sin(angle), np.cos(angle)]])
    shearing = np.array([[1.0, np.tan(sx)], [np.tan(sy), 1.0]])
    linear = factor * rotation @ shearing
    forward = np.eye(3)
    forward[:2, :2] = linear
    forward[:2, 2] = [cx + tx - linear[0] @ [cx, cy], cy + ty - linear[1] @ [cx, cy]]
    inverse = np.linalg.inv(forward)  # PIL maps output pixels to input pixels
    return img.transform(img.size, Image.AFFINE, tuple(inverse[:2].ravel()), Image.NEAREST)


def _warmup_image(img, rng):
    img = _color_jitter(img, rng)
    crop = weak_augment(np.asarray(img)[None], rng)[0]
    return _random_affine(Image.fromarray(crop), rng)


def warmup_view(images: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """SANM's warm-up transform: colour jitter 0.4, pad-4 crop + flip, random affine.

    Affine: rotation U(-15, 15) degrees, translation up to 10% of the size,
    scale U(2/3, 3/2), shear U(-0.1, 0.1) degrees on each axis (C2D's recipe).

    Args:
        images: `(B, H, W, 3)` uint8.
        rng: NumPy generator.

    Returns:
        `(B, H, W, 3)` uint8.
    """
    return _per_image(images, rng, _warmup_image)
