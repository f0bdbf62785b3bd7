"""`find_label_issues`: the training samples whose label is most likely wrong."""

from __future__ import annotations

import numpy as np


def find_label_issues(model, x, y, threshold: float | None = 0.5, batch_size: int = 256):
    """Indices of likely mislabeled samples, the most likely first.

    Uses `model.label_quality(x, y)`: each sample's clean probability from a
    two-component GMM on the model's per-sample losses (for DivideMix, the
    mean over both networks).

    Args:
        model: a model returned by `keras_sanm.wrap`, trained or in training.
        x: `(N, H, W, C)` images, preprocessed as for training.
        y: `(N,)` the given (possibly wrong) integer labels.
        threshold: return samples whose clean probability is at most this;
            `None` returns every index.
        batch_size: prediction batch size.

    Returns:
        int64 indices sorted by increasing clean probability.

    Example:
    >>> issues = keras_sanm.find_label_issues(model, x_train, y_noisy)
    >>> x_train[issues[:20]]          # the 20 most suspicious samples
    """
    if not hasattr(model, "label_quality"):
        raise ValueError(
            "find_label_issues needs a model from keras_sanm.wrap (it uses "
            f"model.label_quality); got {type(model).__name__}."
        )
    quality = model.label_quality(x, y, batch_size=batch_size)
    order = np.argsort(quality, kind="stable")
    if threshold is not None:
        order = order[quality[order] <= threshold]
    return order.astype(np.int64)
