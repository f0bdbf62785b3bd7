"""`find_label_issues`: the training samples whose label is most likely wrong."""

from __future__ import annotations

import numpy as np

from keras_sanm.data.dataset_cache import cache_dataset
from keras_sanm.data.validation import is_dataset

TABLE_COLUMNS = ("index", "given_label", "suggested_label", "label_quality", "is_label_issue")


def find_label_issues(model, x, y=None, threshold: float | None = 0.5, batch_size: int = 256,
                      return_table: bool = False, class_names=None):
    """The training samples whose given label is most likely wrong, the most likely first.

    Uses `model.label_quality(x, y)`: each sample's clean probability from a
    two-component GMM on the model's per-sample losses (for two-network
    methods, the mean over both networks).

    Args:
        model: a model returned by `keras_sanm.wrap`, trained or in training.
        x: `(N, H, W, C)` images as given to `fit` (numpy or
            `keras_sanm.data.ImageFiles`), or a `tf.data.Dataset` /
            `keras.utils.PyDataset` of `(images, labels)` (indices then count
            samples in the order of one pass over it).
        y: `(N,)` the given (possibly wrong) integer labels (with images).
        threshold: a sample is an issue when its clean probability is at
            most this. Without a table, `None` returns every index, ranked.
        batch_size: prediction batch size.
        return_table: return a `pandas.DataFrame` of every sample instead of
            the issues' indices (see Returns).
        class_names: with `return_table`, names of the classes: the table
            then also has `given_name` and `suggested_name`.

    Returns:
        Without `return_table`: int64 indices of the issues, sorted by
        increasing clean probability. With it: one row per sample, worst
        first, with columns `index` (the sample's position in `x`),
        `given_label`, `suggested_label` (the model's most probable class),
        `label_quality` (the clean probability, in `[0, 1]`) and
        `is_label_issue` (`label_quality <= threshold`); cleanlab's
        `Datalab` calls the last three `predicted_label`, `label_score`
        and `is_label_issue`.

    Example:
    >>> issues = keras_sanm.find_label_issues(model, x_train, y_noisy)
    >>> x_train[issues[:20]]          # the 20 most suspicious samples
    >>> table = keras_sanm.find_label_issues(model, x_train, y_noisy, return_table=True)
    >>> table.head(20).to_csv("issues.csv", index=False)
    """
    if not hasattr(model, "label_quality"):
        raise ValueError(
            "find_label_issues needs a model from keras_sanm.wrap (it uses "
            f"model.label_quality); got {type(model).__name__}."
        )
    if return_table:
        return label_issue_table(model, x, y, threshold, batch_size, class_names)
    if class_names is not None:
        raise ValueError("class_names names the classes of the table; pass return_table=True.")
    quality = model.label_quality(x, y, batch_size=batch_size)
    order = np.argsort(quality, kind="stable")
    if threshold is not None:
        order = order[quality[order] <= threshold]
    return order.astype(np.int64)


def label_issue_table(model, x, y=None, threshold: float = 0.5, batch_size: int = 256,
                      class_names=None):
    """`find_label_issues(..., return_table=True)`: one row per sample, worst first.

    A dataset is read once into an on-disk copy
    (`keras_sanm.data.cache_dataset`), so the label quality and the
    suggested label of a row come from the same image, whatever order the
    pipeline gives in later passes.

    Returns:
        A `pandas.DataFrame` with the columns of `TABLE_COLUMNS` (and
        `given_name`, `suggested_name` with `class_names`).
    """
    try:
        import pandas as pd
    except ImportError as error:  # pragma: no cover - environment
        raise ImportError("The label-issue table is a pandas DataFrame: pip install pandas "
                          "(or keras-sanm[cleanlab]).") from error
    if threshold is None or not 0.0 <= float(threshold) <= 1.0:
        raise ValueError(f"The table marks issues with a threshold in [0, 1]; got {threshold!r}.")
    if class_names is not None and len(class_names) != model.num_classes:
        raise ValueError(f"class_names has {len(class_names)} names; the model has "
                         f"{model.num_classes} classes.")
    if is_dataset(x):
        if y is not None:
            raise ValueError("A dataset yields its own labels; do not pass `y`.")
        x, y = cache_dataset(x, image_shape=model.image_shape, num_classes=model.num_classes,
                             verbose=0)
    quality = model.label_quality(x, y, batch_size=batch_size)
    suggested = np.argmax(model.predict_proba(x, batch_size=batch_size, verbose=0), axis=1)
    given = np.asarray(y).reshape(-1).astype(np.int64)
    order = np.argsort(quality, kind="stable")
    table = pd.DataFrame({
        "index": order.astype(np.int64),
        "given_label": given[order],
        "suggested_label": suggested[order].astype(np.int64),
        "label_quality": quality[order].astype(np.float32),
        "is_label_issue": quality[order] <= float(threshold),
    })
    if class_names is not None:
        names = np.asarray([str(name) for name in class_names])
        table["given_name"] = names[table["given_label"].to_numpy()]
        table["suggested_name"] = names[table["suggested_label"].to_numpy()]
    return table


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


def detection_scores(is_issue, label_quality, wrong) -> dict:
    """How well found issues match the labels known to be wrong (synthetic noise).

    Args:
        is_issue: `(N,)` booleans: the samples flagged as label issues.
        label_quality: `(N,)` scores where lower means more likely wrong
            (label quality, or cleanlab's label score), for the ranking.
        wrong: `(N,)` booleans: the labels that are actually wrong.

    Returns:
        `{"precision", "recall", "f1", "auroc", "flagged"}`: precision,
        recall and F1 of `is_issue` against `wrong`, the area under the ROC
        curve of the ranking by `-label_quality`, and the number flagged.

    Example:
    >>> scores = detection_scores(table["is_label_issue"], table["label_quality"],
    ...                           noisy[table["index"]] != clean[table["index"]])
    """
    from sklearn.metrics import precision_recall_fscore_support, roc_auc_score

    is_issue = np.asarray(is_issue, bool).reshape(-1)
    wrong = np.asarray(wrong, bool).reshape(-1)
    quality = np.asarray(label_quality, np.float64).reshape(-1)
    if not len(is_issue) == len(wrong) == len(quality):
        raise ValueError(f"is_issue, label_quality and wrong must have one entry per sample; "
                         f"got {len(is_issue)}, {len(quality)} and {len(wrong)}.")
    precision, recall, f1, _ = precision_recall_fscore_support(
        wrong, is_issue, average="binary", zero_division=0.0)
    auroc = roc_auc_score(wrong, -quality) if 0 < wrong.sum() < len(wrong) else float("nan")
    return {"precision": float(precision), "recall": float(recall), "f1": float(f1),
            "auroc": float(auroc), "flagged": int(is_issue.sum())}
