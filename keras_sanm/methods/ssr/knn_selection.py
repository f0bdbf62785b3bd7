"""SSR's sample selection: relabel confident predictions, keep labels their neighbours share.

Once per epoch, on features and predictions of every training sample (the
network in inference mode), SSR (docs/algorithms.md, "SSR"):

1. *relabels*: a sample's label becomes the predicted class where the
   prediction's confidence exceeds `relabel_threshold` (else it keeps its
   given label; every epoch starts again from the given labels);
2. *votes*: each sample's `k` nearest neighbours by cosine similarity of
   the L2-normalised features (the sample itself among them) vote with
   their labels, one vote each; each class's votes are divided by the
   class's share of all labels (so frequent classes do not win by size);
3. *selects*: a sample is clean where the vote for its label is at least
   `select_threshold` times the top vote (1.0: its label is the plurality
   of its neighbourhood, ties included).

Written with `keras.ops`: the similarities of a chunk of queries to all
samples are one matrix product on the device, and `top_k` finds the
neighbours, so the selection scales to the whole training set on a GPU.
Scikit-learn's `KNeighborsClassifier` would do the votes on the CPU only
and has no class-prior normalisation.

Example:
>>> labels = relabel(probabilities, noisy_labels, 0.9)
>>> votes = knn_label_votes(features, labels, num_classes=10, k=200)
>>> clean, score = select_clean(votes, labels, 1.0)
"""

from __future__ import annotations

import numpy as np
from keras import ops


def relabel(probabilities, labels, threshold: float) -> np.ndarray:
    """The given labels, with the predicted class where its probability exceeds `threshold`.

    Args:
        probabilities: `(N, C)` predicted class probabilities.
        labels: `(N,)` given (noisy) labels.
        threshold: confidence above which the prediction replaces the label
            (strictly above; SSR: 0.9 on CIFAR, 0.95 Animal-10N, 0.99 Clothing1M).

    Returns:
        `(N,)` int64 labels.
    """
    probabilities = np.asarray(probabilities)
    labels = np.asarray(labels).astype(np.int64)
    confident = probabilities.max(axis=1) > threshold
    return np.where(confident, probabilities.argmax(axis=1), labels)


def knn_label_votes(features, labels, num_classes: int, k: int = 200,
                    class_prior: bool = True, chunk_size: int = 1024) -> np.ndarray:
    """Each sample's neighbourhood vote per class.

    Args:
        features: `(N, D)` features (L2-normalised here).
        labels: `(N,)` the labels that vote (SSR: the relabelled ones).
        num_classes: `C`.
        k: neighbours per sample, the sample itself included (at most `N`).
        class_prior: divide each class's votes by its share of `labels`
            (SSR's default; its Clothing1M script votes without it).
        chunk_size: queries per matrix product.

    Returns:
        `(N, C)` float votes, each row summing to 1.
    """
    features = ops.convert_to_tensor(np.asarray(features, np.float32))
    features = features / ops.maximum(ops.norm(features, axis=1, keepdims=True), 1e-12)
    labels = np.asarray(labels).astype(np.int64)
    n = int(labels.shape[0])
    k = int(min(k, n))
    if k < 1:
        raise ValueError(f"k must be >= 1; got {k}.")
    one_hot = ops.one_hot(ops.convert_to_tensor(labels.astype(np.int32)), num_classes)
    rows = []
    for start in range(0, n, chunk_size):
        similarity = ops.matmul(features[start:start + chunk_size], ops.transpose(features))
        _, neighbours = ops.top_k(similarity, k)
        counts = ops.sum(ops.take(one_hot, neighbours, axis=0), axis=1)  # (chunk, C)
        rows.append(ops.convert_to_numpy(counts))
    votes = np.concatenate(rows, axis=0).astype(np.float64) / k
    if class_prior:
        prior = np.bincount(labels, minlength=num_classes) + 1e-10
        votes = votes / (prior / prior.sum())
    return (votes / votes.sum(axis=1, keepdims=True)).astype(np.float32)


def select_clean(votes, labels, threshold: float = 1.0) -> tuple[np.ndarray, np.ndarray]:
    """Samples whose label gets at least `threshold` times the top vote.

    Args:
        votes: `(N, C)` from `knn_label_votes`.
        labels: `(N,)` the labels tested (SSR: the relabelled ones).
        threshold: share of the top vote the label needs (SSR: 1.0).

    Returns:
        `(clean, score)`: `(N,)` bool and the `(N,)` float score
        `votes[label] / max(votes)` in `[0, 1]`.
    """
    votes = np.asarray(votes)
    labels = np.asarray(labels).astype(np.int64)
    own = votes[np.arange(len(labels)), labels]
    score = own / np.maximum(votes.max(axis=1), 1e-12)
    return score >= threshold, score.astype(np.float32)


def class_balanced_order(labels, selected, rng: np.random.Generator) -> np.ndarray:
    """One pass of SSR's class-balanced sampler over the selected samples.

    Every class with selected samples contributes as many indices as the
    largest class has (smaller classes repeat theirs), and the whole list is
    shuffled, so each class is drawn equally often.

    Args:
        labels: `(N,)` labels the classes are read from (SSR: relabelled).
        selected: `(N,)` bool, the clean samples.
        rng: the data's random generator.

    Returns:
        Indices into the training set, `C' * M` long (`C'` classes with
        selected samples, `M` the largest class's count); empty when nothing
        is selected.
    """
    labels = np.asarray(labels)
    indices = np.flatnonzero(np.asarray(selected))
    if len(indices) == 0:
        return indices
    classes = [indices[labels[indices] == c] for c in np.unique(labels[indices])]
    largest = max(len(members) for members in classes)
    order = []
    for members in classes:
        repeats = -(-largest // len(members))
        order.append(np.concatenate([rng.permutation(members) for _ in range(repeats)])[:largest])
    return rng.permutation(np.concatenate(order))
