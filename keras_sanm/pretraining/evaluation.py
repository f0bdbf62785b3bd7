"""How good a base model's features are without training on labels: kNN and a linear probe.

The standard read-outs of self-supervised features, on frozen features and
clean labels: a weighted k-nearest-neighbour vote (Wu et al., 2018: the
`k` most cosine-similar training features vote with weight
`exp(similarity / temperature)`) and a logistic regression (scikit-learn's)
on the features. `RepresentationMonitor` logs both during pretraining.
"""

from __future__ import annotations

import csv
import os

import keras
import numpy as np


def representations(encode, images, batch_size: int = 256) -> np.ndarray:
    """L2-normalised features of images, in inference mode.

    Args:
        encode: `images -> (B, D)` features, e.g. `SimCLRPretrainer.encode`,
            or a `keras.Model` taking the images as they are.
        images: `(N, H, W, C)` array or array-like (`ImageFiles`).
        batch_size: images per forward pass.

    Returns:
        `(N, D)` float32 unit vectors.
    """
    parts = []
    for start in range(0, len(images), batch_size):
        batch = np.asarray(images[start:start + batch_size])
        features = keras.ops.convert_to_numpy(encode(batch, training=False))
        parts.append(np.asarray(features, np.float32).reshape(len(batch), -1))
    features = np.concatenate(parts)
    return features / np.maximum(np.linalg.norm(features, axis=1, keepdims=True), 1e-12)


def knn_accuracy(train_features, train_labels, test_features, test_labels, k: int = 200,
                 temperature: float = 0.1) -> float:
    """Accuracy of a weighted k-nearest-neighbour vote by cosine similarity.

    Args:
        train_features, test_features: `(N, D)` and `(M, D)` unit vectors
            (`representations`).
        train_labels, test_labels: their `(N,)` and `(M,)` integer labels.
        k: neighbours per vote (at most `N`).
        temperature: a neighbour's vote is `exp(similarity / temperature)`.

    Returns:
        The share of test samples whose vote is their label.

    Example:
    >>> knn_accuracy(f_train, y_train, f_test, y_test)   # k=200 cosine
    """
    train_labels = np.asarray(train_labels, np.int64)
    test_labels = np.asarray(test_labels, np.int64)
    classes = int(max(train_labels.max(), test_labels.max())) + 1
    k = min(k, len(train_labels))
    correct = 0
    for start in range(0, len(test_labels), 1024):
        similarity = test_features[start:start + 1024] @ train_features.T
        nearest = np.argpartition(-similarity, k - 1, axis=1)[:, :k]
        weights = np.exp(np.take_along_axis(similarity, nearest, axis=1) / temperature)
        votes = np.zeros((len(nearest), classes))
        np.add.at(votes, (np.arange(len(nearest))[:, None], train_labels[nearest]), weights)
        correct += int(np.sum(votes.argmax(axis=1) == test_labels[start:start + 1024]))
    return correct / len(test_labels)


def linear_probe_accuracy(train_features, train_labels, test_features, test_labels) -> float:
    """Test accuracy of a logistic regression trained on frozen features.

    scikit-learn's `LogisticRegression` (L-BFGS, L2 penalty `C=1`) on
    standardised features.

    Args:
        train_features, test_features: `(N, D)`, `(M, D)` features.
        train_labels, test_labels: their integer labels.

    Returns:
        The test accuracy.
    """
    from sklearn.linear_model import LogisticRegression
    from sklearn.pipeline import make_pipeline
    from sklearn.preprocessing import StandardScaler

    probe = make_pipeline(StandardScaler(), LogisticRegression(max_iter=2000))
    probe.fit(train_features, train_labels)
    return float(probe.score(test_features, test_labels))


class RepresentationMonitor(keras.callbacks.Callback):
    """Measures the kNN (and, optionally, linear-probe) test accuracy of the features while pretraining.

    Measures before the first step (the starting weights: epoch 0), every
    `every` epochs and after the last one, adds `knn_accuracy` (and
    `probe_accuracy`) to those epochs' logs and keeps them in `measured`;
    with `csv_path`, also as rows `epoch,knn_accuracy[,probe_accuracy]`
    (a resumed run rewrites the rows from the epoch it measures on). The
    model is a `SimCLRPretrainer` (`keras_sanm.pretrain` passes it). The
    labels only measure: nothing in the pretraining reads them.

    Args:
        train: `(images, labels)` whose features form the kNN memory and the
            probe's training set.
        test: `(images, labels)` measured.
        every: epochs between measurements.
        k: neighbours of the vote.
        probe: also fit a linear probe (slower: a logistic regression each time).
        csv_path: optional file the measurements are written to.

    Example:
    >>> monitor = RepresentationMonitor((x_train, y_train), (x_test, y_test), every=10)
    >>> keras_sanm.pretrain(base, x_unlabeled, epochs=100, callbacks=[monitor])
    >>> monitor.measured[100]["knn_accuracy"]
    """

    def __init__(self, train, test, every: int = 10, k: int = 200, probe: bool = False,
                 csv_path: str | None = None):
        super().__init__()
        self.train, self.test = train, test
        self.every, self.k, self.probe = int(every), int(k), bool(probe)
        self.csv_path = csv_path
        self.total_epochs = None
        self.measured: dict[int, dict[str, float]] = dict(self._rows())

    def _rows(self) -> list[tuple[int, dict[str, float]]]:
        if not self.csv_path or not os.path.exists(self.csv_path):
            return []
        with open(self.csv_path, newline="") as f:
            return [(int(row.pop("epoch")), {k: float(v) for k, v in row.items()})
                    for row in csv.DictReader(f)]

    def _write(self, epoch: int, result: dict[str, float]) -> None:
        rows = [(e, r) for e, r in self._rows() if e < epoch] + [(epoch, result)]
        with open(self.csv_path, "w", newline="") as f:
            writer = csv.writer(f)
            writer.writerow(["epoch", *result])
            writer.writerows([e, *(r.get(k, "") for k in result)] for e, r in rows)

    def measure(self) -> dict[str, float]:
        """The read-outs of the current features: `{"knn_accuracy"[, "probe_accuracy"]}`."""
        encode = self.model.encode
        train = representations(encode, self.train[0])
        test = representations(encode, self.test[0])
        result = {"knn_accuracy": knn_accuracy(train, self.train[1], test, self.test[1], self.k)}
        if self.probe:
            result["probe_accuracy"] = linear_probe_accuracy(
                train, self.train[1], test, self.test[1])
        return result

    def _record(self, epoch: int, logs=None) -> None:
        result = self.measure()
        self.measured[epoch] = result
        if self.csv_path:
            self._write(epoch, result)
        if logs is not None:
            logs.update(result)

    def on_train_begin(self, logs=None):
        self.total_epochs = self.params.get("epochs") if self.params else None
        if 0 not in self.measured:
            self._record(0)

    def on_epoch_end(self, epoch, logs=None):
        done = epoch + 1
        if done % self.every == 0 or done == self.total_epochs:
            self._record(done, logs)
