"""`row_indices`: what an index of an array-like read on access selects."""

from __future__ import annotations

import numpy as np


def row_indices(key, length: int, owner: str) -> np.ndarray:
    """The row numbers a slice, integer array or boolean mask selects, as numpy does.

    Args:
        key: a slice, a 1-D integer index (negative counts from the end) or a
            boolean mask of shape `(length,)`.
        length: rows of the array-like.
        owner: its class name, for the error message.

    Returns:
        `(K,)` int64 row numbers in `[0, length)`.

    Raises:
        IndexError: another kind of key, or an index out of range.
    """
    if isinstance(key, slice):
        return np.arange(length)[key]
    indices = np.asarray(key)
    if indices.dtype == bool:
        if indices.shape != (length,):
            raise IndexError(f"A boolean index must have shape ({length},).")
        return np.flatnonzero(indices)
    if not np.issubdtype(indices.dtype, np.integer) or indices.ndim != 1:
        raise IndexError(
            f"{owner} takes an int, a slice, or a 1-D integer or boolean index; got {key!r}.")
    indices = np.where(indices < 0, indices + length, indices).astype(np.int64)
    if len(indices) and (indices.min() < 0 or indices.max() >= length):
        raise IndexError(f"An index is out of range for {length} images.")
    return indices
