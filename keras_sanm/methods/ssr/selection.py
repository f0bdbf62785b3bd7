"""`SSRSelection`: SSR's per-epoch relabelling and neighbour selection (a callback)."""

from __future__ import annotations

import keras
import numpy as np

from keras_sanm.methods.ssr.knn_selection import knn_label_votes, relabel, select_clean


class SSRSelection(keras.callbacks.Callback):
    """At the start of every epoch: relabel, vote, select (docs/algorithms.md, "SSR").

    The model's selection pass (inference mode, weak views of every sample)
    gives pooled features and class probabilities; the labels are the given
    ones, relabelled where the top probability exceeds `relabel_threshold`;
    a sample is clean when its label is at least `select_threshold` times
    the top vote of its `k` neighbours. The result goes to the data
    (`SSRData.set_selection`). Adds to the epoch logs: `clean_count`,
    `relabelled_count` and, with true labels, `clean_precision` and
    `clean_recall` (of the clean set against the samples whose current label
    is right) and `label_accuracy` (current labels against the true ones).

    Args:
        data: the `SSRData` being trained on.
        relabel_threshold: `theta_r`.
        select_threshold: `theta_s`.
        k: neighbours.
        class_prior: divide votes by the class shares.
    """

    def __init__(self, data, relabel_threshold: float, select_threshold: float, k: int,
                 class_prior: bool = True):
        super().__init__()
        self.data = data
        self.relabel_threshold, self.select_threshold = relabel_threshold, select_threshold
        self.k, self.class_prior = k, class_prior
        self.stats: dict[str, float] = {}

    def on_epoch_begin(self, epoch, logs=None):
        features, probabilities = self.model.selection_outputs(self.data.selection_view())
        labels = relabel(probabilities, self.data.labels, self.relabel_threshold)
        votes = knn_label_votes(features, labels, self.data.num_classes, self.k,
                                self.class_prior)
        clean, score = select_clean(votes, labels, self.select_threshold)
        self.data.set_selection(labels, clean, score)
        self.stats = {"clean_count": float(clean.sum()),
                      "relabelled_count": float(np.sum(labels != self.data.labels))}
        truth = self.data.clean_labels
        if truth is not None:
            right = labels == truth
            self.stats.update(
                clean_precision=float(right[clean].mean()) if clean.any() else float("nan"),
                clean_recall=float(clean[right].mean()) if right.any() else float("nan"),
                label_accuracy=float(right.mean()))

    def on_epoch_end(self, epoch, logs=None):
        if logs is not None:
            logs.update(self.stats)
