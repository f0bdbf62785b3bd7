"""`cross_val_predict_proba`: out-of-sample class probabilities for every sample.

Each sample's probabilities come from a model that did not train on it: the
data is split into `folds` stratified parts (scikit-learn's
`StratifiedKFold`), and for each part a fresh model from `make_model()` trains
on the others and predicts it. These are the `pred_probs` that
`cleanlab.filter.find_label_issues(labels, pred_probs)` expects. scikit-learn's
own `cross_val_predict` needs an estimator it can clone and arrays in memory;
here a fold trains a Keras model on any input kind `fit` takes, shows which
fold it is on, and, with `directory`, a killed run resumes: finished folds are
read back and the fold in progress continues from its last epoch
(`TrainingBackup`).
"""

from __future__ import annotations

import hashlib
import json
import os
import warnings
from collections.abc import Callable

import keras
import numpy as np

from keras_sanm.data.dataset_cache import CachedImages, cache_dataset
from keras_sanm.data.image_files import ImageFiles
from keras_sanm.data.validation import check_images, check_labels, is_dataset
from keras_sanm.messages import inform, reports_under_fit_verbosity
from keras_sanm.training.backup import TrainingBackup

MANIFEST = "cross_validation.json"


def fold_indices(labels: np.ndarray, folds: int, seed: int) -> list[np.ndarray]:
    """The held-out indices of each fold: stratified by label, shuffled with `seed`.

    Args:
        labels: `(N,)` integer labels.
        folds: number of folds (at least 2).
        seed: seed of the shuffle.

    Returns:
        `folds` sorted int64 index arrays that partition `range(N)`.
    """
    from sklearn.model_selection import StratifiedKFold

    counts = np.bincount(labels)
    if counts[counts > 0].max() < folds:
        raise ValueError(f"folds={folds} needs at least {folds} samples of some class; the "
                         f"largest class has {counts.max()}.")
    splitter = StratifiedKFold(n_splits=folds, shuffle=True, random_state=seed)
    with warnings.catch_warnings():
        # A class rarer than `folds` is spread over as many folds as it has samples.
        warnings.simplefilter("ignore", UserWarning)
        parts = [np.sort(held).astype(np.int64)
                 for _, held in splitter.split(np.zeros(len(labels)), labels)]
    return parts


def take_rows(images, indices: np.ndarray):
    """`images[indices]`, kept on disk for images read on access (`ImageFiles`, `CachedImages`)."""
    if isinstance(images, (ImageFiles, CachedImages)):
        return images.subset(indices)
    return images[indices]


def _probabilities(model, images, batch_size: int) -> np.ndarray:
    """Class probabilities of `images` under a trained model.

    A `keras_sanm.wrap` model gives them itself (`predict_proba`); another
    Keras model must output probabilities (a softmax), which is checked.
    """
    if hasattr(model, "predict_proba"):
        return model.predict_proba(images, batch_size=batch_size, verbose=0)
    scores = np.asarray(keras.ops.convert_to_numpy(
        model.predict(images, batch_size=batch_size, verbose=0)), np.float32)
    if scores.ndim != 2 or (scores < 0).any() or not np.allclose(scores.sum(1), 1.0, atol=1e-3):
        raise ValueError(
            "make_model() returned a model whose outputs are not class probabilities (rows "
            "of non-negative values summing to 1). End it with a softmax, or return a "
            "keras_sanm.wrap model (it converts logits itself).")
    return scores


def _fingerprint(labels: np.ndarray, images) -> str:
    """A short hash of the labels and image shape: a resumed run must see the same data."""
    digest = hashlib.sha1(np.ascontiguousarray(labels, np.int64).tobytes())
    digest.update(repr(tuple(images.shape)).encode())
    return digest.hexdigest()[:16]


def _check_manifest(directory: str, manifest: dict) -> None:
    """Writes the run's description, or refuses a folder written by another run."""
    path = os.path.join(directory, MANIFEST)
    if os.path.exists(path):
        with open(path) as f:
            saved = json.load(f)
        differ = sorted(k for k in set(saved) | set(manifest) if saved.get(k) != manifest.get(k))
        if differ:
            raise ValueError(
                f"{directory} holds the folds of another cross-validation ("
                + ", ".join(f"{k}: {saved.get(k)!r} then, {manifest.get(k)!r} now"
                            for k in differ)
                + "). Resume with the same data, folds and seed, or use another folder.")
        return
    os.makedirs(directory, exist_ok=True)
    with open(path + ".tmp", "w") as f:
        json.dump(manifest, f, indent=1)
    os.replace(path + ".tmp", path)


@reports_under_fit_verbosity
def cross_val_predict_proba(
    make_model: Callable[[], keras.Model],
    x,
    y=None,
    folds: int = 5,
    fit_kwargs: dict | None = None,
    seed: int = 0,
    directory: str | os.PathLike | None = None,
    batch_size: int = 256,
    verbose="auto",
) -> np.ndarray:
    """Out-of-sample class probabilities of every sample, by K-fold cross-validation.

    Args:
        make_model: a function of no argument that returns a fresh model,
            e.g. `lambda: keras_sanm.wrap(make_base(), method="ce", sanm=False)`
            (any method), or a compiled Keras classifier ending in a softmax.
            It is called once per fold.
        x: training images `(N, H, W, C)` (a numpy array of any pixel
            scale, or `keras_sanm.data.ImageFiles`), or a `tf.data.Dataset` /
            `keras.utils.PyDataset` of `(images, labels)`, read once into an
            on-disk copy (sample `i` is the `i`-th image of that pass).
        y: `(N,)` integer labels, with images.
        folds: number of folds `K`; each model trains on `(K - 1) / K` of the
            data.
        fit_kwargs: passed to every fold's `model.fit` (`epochs`,
            `batch_size`, `callbacks`, ...); not `x`, `y` or
            `validation_data`.
        seed: seed of the stratified split.
        directory: a folder to keep each finished fold's probabilities and
            the running fold's checkpoint in; calling again with the same
            folder resumes (finished folds are not retrained). `None` keeps
            nothing.
        batch_size: prediction batch size.
        verbose: 0 silent; otherwise a line per fold, and `fit`'s progress
            as `fit_kwargs` set it.

    Returns:
        `(N, classes)` float32 probabilities in the order of `x` (of the
        dataset's pass), ready for
        `cleanlab.filter.find_label_issues(y, probabilities)`.

    Example:
    >>> probabilities = keras_sanm.cross_val_predict_proba(
    ...     lambda: keras_sanm.wrap(make_base(), method="ce", sanm=False),
    ...     x_train, y_noisy, folds=5, fit_kwargs={"epochs": 30},
    ...     directory="runs/cross_val")
    >>> issues = cleanlab.filter.find_label_issues(y_noisy, probabilities)
    """
    if not callable(make_model) or isinstance(make_model, keras.Model):
        raise TypeError("make_model must be a function that returns a new model (it is "
                        "called once per fold), e.g. lambda: keras_sanm.wrap(base(), ...).")
    if isinstance(folds, bool) or not isinstance(folds, (int, np.integer)) or folds < 2:
        raise ValueError(f"folds must be an integer of at least 2; got {folds!r}.")
    fit_kwargs = dict(fit_kwargs or {})
    refused = sorted({"x", "y", "validation_data", "validation_split"} & set(fit_kwargs))
    if refused:
        raise ValueError(f"fit_kwargs cannot set {refused}: each fold trains on the other "
                         "folds and predicts its own.")
    if is_dataset(x):
        if y is not None:
            raise ValueError("A dataset yields its own labels; do not pass `y`.")
        images, labels = cache_dataset(x, verbose=0 if verbose == 0 else 1)
    else:
        images = x if isinstance(x, (ImageFiles, CachedImages)) else check_images(x)
        if y is None:
            raise ValueError("cross_val_predict_proba(x, y) needs the labels `y` with images.")
        labels = check_labels(y, len(images))
    labels = np.asarray(labels, np.int64).reshape(-1)
    parts = fold_indices(labels, int(folds), seed)
    if directory is not None:
        directory = os.fspath(directory)
        _check_manifest(directory, {"samples": len(labels), "folds": int(folds),
                                    "seed": int(seed), "data": _fingerprint(labels, images)})
    result = None
    for k, held in enumerate(parts):
        done = None if directory is None else os.path.join(directory, f"fold_{k}.npy")
        if done is not None and os.path.exists(done):
            probabilities = np.load(done)
            inform(f"fold {k + 1}/{folds}: read back from {done}")
        else:
            train = np.setdiff1d(np.arange(len(labels)), held, assume_unique=True)
            inform(f"fold {k + 1}/{folds}: training on {len(train)} samples, predicting "
                   f"{len(held)}")
            model = make_model()
            if not isinstance(model, keras.Model):
                raise TypeError(f"make_model() must return a Keras model; got "
                                f"{type(model).__name__}.")
            options = dict(fit_kwargs)
            if directory is not None:
                backup = TrainingBackup(os.path.join(directory, f"fold_{k}_checkpoint"))
                options["callbacks"] = list(options.get("callbacks") or []) + [backup]
            if verbose == 0:
                options.setdefault("verbose", 0)
            model.fit(take_rows(images, train), labels[train], **options)
            probabilities = _probabilities(model, take_rows(images, held), batch_size)
            if done is not None:
                np.save(done + ".tmp.npy", probabilities)
                os.replace(done + ".tmp.npy", done)
        if result is None:
            result = np.zeros((len(labels), probabilities.shape[1]), np.float32)
        elif probabilities.shape[1] != result.shape[1]:
            raise ValueError(f"Fold {k + 1} predicts {probabilities.shape[1]} classes, the "
                             f"first fold {result.shape[1]}: make_model() must build the "
                             "same classifier every time.")
        result[held] = probabilities
    if labels.max() >= result.shape[1]:
        raise ValueError(f"Labels go up to {labels.max()}, but the models predict "
                         f"{result.shape[1]} classes.")
    return result
