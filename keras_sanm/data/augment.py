"""Weak augmentation (pad-4 random crop and horizontal flip), vectorised over a batch."""

from __future__ import annotations

import numpy as np


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
