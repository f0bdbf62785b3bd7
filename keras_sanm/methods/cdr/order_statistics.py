"""`kth_largest`: the k-th largest of many non-negative numbers without sorting them.

CDR keeps the gradient of the `k` most important of all kernel entries (about
11 million for a PreAct ResNet-18) and needs the k-th largest importance as
its threshold every step. Sorting all of them costs seconds per step on a
CPU. Keras has no selection op (`ops.top_k` with `k` in the millions sorts as
well), so this is a radix selection: for non-negative IEEE floats the order
of the values is the order of their bit patterns read as integers (below
2**31), so two counting passes find the exact value: one histogram of the
high 16 bits finds the bucket holding the k-th largest, one of the low 15
bits within that bucket finds the value. The result is the sort's element,
ties included.
"""

from __future__ import annotations

import keras
from keras import ops

from keras_sanm.backend import bin_counts

_LOW_BITS = 15
_LOW_BUCKETS = 2 ** _LOW_BITS  # bit patterns of x >= 0 lie in [0, 2**31)
_HIGH_BUCKETS = 2 ** (31 - _LOW_BITS)


def _kth_bucket(counts, k):
    """`(bucket, k within it)`: the bucket holding the k-th largest, counting from the top."""
    from_top = ops.flip(ops.cumsum(ops.flip(counts, 0)), 0)  # entries in this bucket or above
    bucket = ops.sum(ops.cast(ops.greater_equal(from_top, k), "int32")) - 1
    above = ops.take(from_top, bucket) - ops.take(counts, bucket)
    return bucket, k - above


def kth_largest(values, k):
    """The `k`-th largest entry of a 1-D tensor of non-negative floats.

    Equal to `ops.sort(values)[n - k]` (so entries tied with it count among
    the `k` largest when compared with `>=`).

    Args:
        values: 1-D tensor of non-negative float16, bfloat16 or float32
            numbers (e.g. `|w * g|`).
        k: how many of the largest entries the threshold keeps, `1 <= k <= n`
            (a Python int or an integer scalar tensor, e.g. computed in a step).

    Returns:
        A scalar of `values`' dtype: the threshold.

    Example:
    >>> kth_largest(ops.convert_to_tensor([0.5, 2.0, 1.0, 2.0]), 3)   # 1.0
    """
    dtype = keras.backend.standardize_dtype(getattr(values, "dtype", "float32"))
    if dtype not in ("float16", "bfloat16", "float32"):  # (float64 would be rounded)
        raise ValueError(f"kth_largest takes float16, bfloat16 or float32 values; got {dtype}.")
    values = ops.convert_to_tensor(values, dtype)
    bits = ops.view(ops.cast(values, "float32"), "int32")  # order-preserving for x >= 0
    high = bits // _LOW_BUCKETS
    bucket, k = _kth_bucket(bin_counts(high, _HIGH_BUCKETS), ops.cast(k, "int32"))
    low_counts = bin_counts(bits - high * _LOW_BUCKETS, _LOW_BUCKETS,
                            where=ops.equal(high, bucket))
    low, _ = _kth_bucket(low_counts, k)
    threshold = ops.reshape(bucket * _LOW_BUCKETS + low, (1,))
    return ops.cast(ops.view(threshold, "float32")[0], values.dtype)
