"""`find_label_issues`: the training samples whose label is most likely wrong."""

from __future__ import annotations

import numpy as np


def find_label_issues(model, x, y=None, threshold: float | None = 0.5, batch_size: int = 256):
    """Indices of likely mislabeled samples, the most likely first.

    Uses `model.label_quality(x, y)`: each sample's clean probability from a
    two-component GMM on the model's per-sample losses (for DivideMix, the
    mean over both networks).

    Args:
        model: a model returned by `keras_sanm.wrap`, trained or in training.
        x: `(N, H, W, C)` images as given to `fit`, or a `tf.data.Dataset` /
            `keras.utils.PyDataset` of `(images, labels)` (indices then count
            samples in the order of one pass over it).
        y: `(N,)` the given (possibly wrong) integer labels (with images).
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


def estimate_noise_rate(model, x, y=None, threshold: float = 0.5, batch_size: int = 256) -> float:
    """Estimated fraction of wrong labels: the share with clean probability below `threshold`.

    Use it to set Co-teaching's `forget_rate` or CDR's `noise_rate` on data
    whose noise rate is unknown: train a cross-entropy model for a few
    epochs (before it memorises the wrong labels; e.g. `wrap(base,
    method="ce", sanm=False)`) and call this on the training set. The GMM
    split is a rough estimate (it overestimates on hard, clean samples);
    a small hand-checked subset is a better one when available.

    Args:
        model: a model returned by `keras_sanm.wrap`, briefly trained.
        x: `(N, H, W, C)` training images, or a dataset of
            `(images, labels)` (as for `find_label_issues`).
        y: `(N,)` their given labels (with images).
        threshold: clean-probability threshold.
        batch_size: prediction batch size.

    Returns:
        A float in `[0, 1]`.

    Example:
    >>> ce = keras_sanm.wrap(base, method="ce", sanm=False)
    >>> ce.fit(x_train, y_noisy, epochs=5)
    >>> rate = keras_sanm.label_issues.estimate_noise_rate(ce, x_train, y_noisy)
    """
    quality = model.label_quality(x, y, batch_size=batch_size)
    return float(np.mean(quality < threshold))
