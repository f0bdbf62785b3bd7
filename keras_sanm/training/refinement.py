"""Label refinement shared by DivideMix and SANM's refined targets: sharpening and
co-refinement `Sharpen(w * e_y + (1 - w) * p)` (docs/algorithms.md, "DivideMix"), in `keras.ops`."""

from __future__ import annotations

from keras import ops


def sharpen(probabilities, temperature: float):
    """Temperature sharpening `p^(1/T) / sum_k p_k^(1/T)` along the last axis.

    Args:
        probabilities: `(B, C)` distributions.
        temperature: `T` (0.5 in DivideMix).

    Returns:
        `(B, C)` sharpened distributions.

    Example:
    >>> sharpen(ops.array([[0.6, 0.4]]), 0.5)   # [[0.692, 0.308]]
    """
    powered = ops.power(probabilities, 1.0 / temperature)
    return powered / ops.sum(powered, axis=-1, keepdims=True)


def co_refine(mean_probabilities, one_hot_labels, clean_probability, temperature):
    """Label co-refinement: `Sharpen(w * e_y + (1 - w) * p)` (§2.6).

    Args:
        mean_probabilities: `(B, C)` average prediction over the two views.
        one_hot_labels: `(B, C)` noisy labels.
        clean_probability: `(B,)` the peer's clean probability `w`.
        temperature: sharpening temperature.

    Returns:
        `(B, C)` refined targets.
    """
    w = ops.expand_dims(ops.cast(clean_probability, mean_probabilities.dtype), -1)
    return sharpen(w * one_hot_labels + (1.0 - w) * mean_probabilities, temperature)
