"""Weak augmentation (pad-4 random crop and horizontal flip), vectorised over a batch."""

from __future__ import annotations

import numpy as np

from keras_sanm.data.normalization import strided_sample


def weak_augment(images: np.ndarray, rng: np.random.Generator, padding: int = 4):
    """Random crop of the zero-padded image back to its size, then a random flip.

    The reference's "weak" transform (`RandomCrop(32, padding=4)`, then
    `RandomHorizontalFlip()`), applied to raw images before normalisation so
    the padding is black as in the reference.

    Args:
        images: `(B, H, W, C)` array (any dtype).
        rng: NumPy generator.
        padding: pixels of zero padding on each side.

    Returns:
        Array of the same shape and dtype.

    Example:
    >>> out = weak_augment(np.zeros((2, 32, 32, 3), np.uint8), np.random.default_rng(0))
    """
    batch, height, width = images.shape[:3]
    padded = np.pad(images, ((0, 0), (padding, padding), (padding, padding), (0, 0)))
    tops = rng.integers(0, 2 * padding + 1, size=batch)
    lefts = rng.integers(0, 2 * padding + 1, size=batch)
    flips = rng.random(batch) < 0.5
    rows = tops[:, None] + np.arange(height)[None, :]
    cols = lefts[:, None] + np.arange(width)[None, :]
    cols = np.where(flips[:, None], cols[:, ::-1], cols)
    return padded[np.arange(batch)[:, None, None], rows[:, :, None], cols[:, None, :]]


def black_level(images) -> np.ndarray | None:
    """Where black lies in standardised images, so that augmentations pad with it.

    The augmentations pad raw images with 0, which is black for uint8 images
    and floats in `[0, 1]` or `[0, 255]`, as in the reference. In images the
    user standardised, 0 is the mean colour instead: a crop of them would be
    padded with grey where the same pictures in 8 bits get black, and the
    same data would train differently in the two scales. Black there is
    `(0 - mean) / std`, which the package cannot know; the darkest value of
    each channel in the images (read from an evenly strided sample of them,
    `normalization.strided_sample`) is it for any set with a black pixel per
    channel.

    Args:
        images: `(N, H, W, C)` training images.

    Returns:
        `(C,)` float32 per-channel black for float images with negative
        values (standardised), else `None` (black is 0).
    """
    if np.asarray(images[:1]).dtype == np.uint8:
        return None
    sample = strided_sample(images)
    if sample.size == 0 or float(sample.min()) >= 0:
        return None
    return sample.reshape(-1, sample.shape[-1]).min(axis=0).astype(np.float32)


def augment_from_black(augment, images, rng, black: np.ndarray | None):
    """`augment(images, rng)` with `black` moved to 0 for it and back after.

    Args:
        augment: `(images, rng) -> images`, padding with 0.
        images: a raw batch.
        rng: the augmentation's generator.
        black: `black_level` of the training set (`None`: black is 0).

    Returns:
        The augmented batch, float32 where `black` is given.
    """
    if black is None:
        return augment(images, rng)
    return augment(np.asarray(images, np.float32) - black, rng) + black
