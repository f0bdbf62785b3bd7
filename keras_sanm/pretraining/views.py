"""SimCLR's pair of views of a batch, drawn on the device in `keras.ops`.

Each image draws its own crop, flip, colour jitter and greyscale from the
distributions of SimCLR's CIFAR recipe (Chen et al., 2020, appendix B.9):

* a random resized crop covering 8% to 100% of the image's area, with an
  aspect ratio in [3/4, 4/3] (log-uniform), resized back with bilinear
  interpolation (a box larger than the image is clipped to it, where
  torchvision's version retries its draw);
* a horizontal flip with probability 1/2;
* with probability 0.8, colour jitter of strength `s`: brightness,
  contrast and saturation factors in `[1 - 0.8 s, 1 + 0.8 s]` and a hue
  shift in `[-0.2 s, 0.2 s]` (turns of the colour wheel), applied in
  this fixed order;
* with probability 0.2, greyscale.

The views work on images in `[0, 1]` and return them so; statically
shaped, so they run inside the compiled training step on every backend.
Keras' own image layers (`RandomColorJitter`, `RandomGrayscale`) apply one
probability to the whole batch or use other factor conventions, and Keras
has no random resized crop; hence these few functions.

Example:
>>> seed = keras.random.SeedGenerator(0)
>>> first, second = simclr_view(images, seed), simclr_view(images, seed)
"""

from __future__ import annotations

import math

from keras import ops, random

CROP_AREA = (0.08, 1.0)
CROP_RATIO = (3.0 / 4.0, 4.0 / 3.0)
JITTER_PROBABILITY = 0.8
GREYSCALE_PROBABILITY = 0.2
LUMA = (0.299, 0.587, 0.114)


def _per_image(values):
    return ops.reshape(values, (-1, 1, 1, 1))


def _uniform(batch: int, low: float, high: float, seed):
    return random.uniform((batch,), minval=low, maxval=high, seed=seed)


def random_resized_crop(images, seed, area=CROP_AREA, ratio=CROP_RATIO):
    """A crop of each image, of random area and aspect ratio, resized to the image's size.

    Args:
        images: `(B, H, W, C)` float images.
        seed: a `keras.random.SeedGenerator`.
        area: range of the crop's share of the image's area.
        ratio: range of its width / height (drawn log-uniformly).

    Returns:
        `(B, H, W, C)` crops.
    """
    batch, (height, width) = ops.shape(images)[0], images.shape[1:3]
    share = _uniform(batch, *area, seed)
    aspect = ops.exp(_uniform(batch, math.log(ratio[0]), math.log(ratio[1]), seed))
    crop_w = ops.minimum(ops.sqrt(share * aspect) * width, float(width))
    crop_h = ops.minimum(ops.sqrt(share / aspect) * height, float(height))
    left = random.uniform((batch,), seed=seed) * (width - crop_w)
    top = random.uniform((batch,), seed=seed) * (height - crop_h)
    # Output pixel centre (x + 1/2) reads the crop at the same relative place.
    scale_x, scale_y = crop_w / width, crop_h / height
    zero = ops.zeros((batch,))
    transform = ops.stack([
        scale_x, zero, left + 0.5 * scale_x - 0.5,
        zero, scale_y, top + 0.5 * scale_y - 0.5,
        zero, zero], axis=1)
    return ops.image.affine_transform(images, transform, interpolation="bilinear",
                                      fill_mode="nearest")


def random_flip(images, seed):
    """Each image mirrored left-right with probability 1/2."""
    flip = random.uniform((ops.shape(images)[0],), seed=seed) < 0.5
    return ops.where(_per_image(flip), ops.flip(images, axis=2), images)


def grey(images):
    """Luma (ITU-R 601) of RGB images, `(B, H, W, 1)`; one-channel images as they are."""
    if images.shape[-1] != 3:
        return ops.mean(images, axis=-1, keepdims=True)
    return ops.sum(images * ops.convert_to_tensor(LUMA, images.dtype), axis=-1, keepdims=True)


def colour_jitter(images, seed, strength: float = 0.5):
    """Brightness, contrast, saturation and hue, each with a factor drawn per image.

    Args:
        images: `(B, H, W, C)` images in `[0, 1]`; saturation and hue apply
            to 3-channel images only.
        seed: a `keras.random.SeedGenerator`.
        strength: SimCLR's colour strength `s` (0.5 for CIFAR).

    Returns:
        The jittered images, clipped to `[0, 1]`.
    """
    batch, channels = ops.shape(images)[0], images.shape[-1]
    spread = 0.8 * strength
    images = ops.clip(images * _per_image(_uniform(batch, 1 - spread, 1 + spread, seed)), 0, 1)
    mean = ops.mean(grey(images), axis=(1, 2, 3), keepdims=True)
    factor = _per_image(_uniform(batch, 1 - spread, 1 + spread, seed))
    images = ops.clip(mean + factor * (images - mean), 0, 1)
    if channels != 3:
        return images
    factor = _per_image(_uniform(batch, 1 - spread, 1 + spread, seed))
    levels = grey(images)
    images = ops.clip(levels + factor * (images - levels), 0, 1)
    shift = _per_image(_uniform(batch, -0.2 * strength, 0.2 * strength, seed))
    hsv = ops.image.rgb_to_hsv(images, data_format="channels_last")
    hue = hsv[..., :1] + shift
    hue = hue - ops.floor(hue)
    return ops.clip(ops.image.hsv_to_rgb(ops.concatenate([hue, hsv[..., 1:]], axis=-1),
                                         data_format="channels_last"), 0, 1)


def _with_probability(probability: float, changed, images, seed):
    keep = random.uniform((ops.shape(images)[0],), seed=seed) >= probability
    return ops.where(_per_image(keep), images, changed)


def simclr_view(images, seed, strength: float = 0.5):
    """One SimCLR view of every image: crop, flip, colour jitter (p 0.8), greyscale (p 0.2).

    Args:
        images: `(B, H, W, C)` float images in `[0, 1]`.
        seed: a `keras.random.SeedGenerator` (each call draws anew).
        strength: colour jitter strength.

    Returns:
        `(B, H, W, C)` float32 views in `[0, 1]`.

    Example:
    >>> view = simclr_view(ops.ones((4, 32, 32, 3)) / 2, keras.random.SeedGenerator(0))
    """
    images = ops.cast(images, "float32")
    images = random_flip(random_resized_crop(images, seed), seed)
    images = _with_probability(JITTER_PROBABILITY, colour_jitter(images, seed, strength),
                               images, seed)
    greyed = ops.repeat(grey(images), images.shape[-1], axis=-1)
    return _with_probability(GREYSCALE_PROBABILITY, greyed, images, seed)
