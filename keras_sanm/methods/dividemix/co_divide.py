"""`CoDivide`: DivideMix's per-epoch co-divide split of the training data (a callback)."""

from __future__ import annotations

import keras
import numpy as np

from keras_sanm.label_quality import clean_probability, normalise_losses, split_statistics


class CoDivide(keras.callbacks.Callback):
    """DivideMix's co-divide, at the start of every epoch after warm-up.

    For each network: an eval pass over the whole training set (inference
    mode, no augmentation), per-sample cross-entropy, min-max normalised and
    appended to that network's history; the GMM input is the mean of the last
    `history_length` vectors (5 at 90% noise, else 1); the two-component GMM
    gives every sample's clean probability, written to row `k` of
    `data.label_quality` (docs/algorithms.md, "DivideMix"). Network `k` then trains on
    its peer's split. Adds to the epoch logs, per network `k` (1-based) that
    trains on the split: `labeled_k` (labeled-set size) and, with true labels,
    `noise_auc_k`, `clean_precision_k`, `clean_recall_k` (NaN in warm-up).

    Args:
        data: the `CoDivideData` being trained on.
        warmup_epochs: epochs before the first division.
        threshold: `tau`.
        history_length: number of recent loss vectors averaged.
        seed: base seed of the GMM initialisation (`None`: unseeded, as the
            reference).
    """

    def __init__(self, data, warmup_epochs: int, threshold: float,
                 history_length: int = 1, seed: int | None = None):
        super().__init__()
        self.data, self.warmup_epochs, self.threshold = data, warmup_epochs, threshold
        self.history_length, self.seed = max(1, int(history_length)), seed
        self.loss_history: list[list[np.ndarray]] = [[], []]
        self.stats: dict[str, float] = {}

    def stat_names(self) -> list[str]:
        """Names of the logged statistics (the same every epoch, for CSV logs)."""
        names = ["labeled"]
        if self.data.clean_labels is not None:
            names += ["noise_auc", "clean_precision", "clean_recall"]
        return [f"{name}_{k}" for name in names for k in (1, 2)]

    def on_epoch_begin(self, epoch, logs=None):
        # Warm-up epochs log NaN, so every epoch has the same keys.
        self.stats = {name: float("nan") for name in self.stat_names()}
        if epoch < self.warmup_epochs:
            return
        # Both eval passes run before either network trains this epoch.
        for k in (0, 1):
            history = self.loss_history[k]
            history.append(normalise_losses(self.model.network_losses(k, self.data)))
            del history[: -self.history_length]
            gmm_input = np.mean(history, axis=0)
            seed = None if self.seed is None else self.seed + 2 * epoch + k
            quality, _ = clean_probability(gmm_input, seed=seed, normalise=False)
            self.data.label_quality[:, k] = quality.astype(np.float32)
        for k in (0, 1):
            peer_quality = self.data.label_quality[:, 1 - k]
            stats = split_statistics(
                peer_quality, self.data.labels, self.data.clean_labels, self.threshold
            )
            self.stats[f"labeled_{k + 1}"] = float(np.sum(peer_quality > self.threshold))
            for name in ("noise_auc", "clean_precision", "clean_recall"):
                if name in stats:
                    self.stats[f"{name}_{k + 1}"] = stats[name]

    def on_epoch_end(self, epoch, logs=None):
        if logs is not None:
            logs.update(self.stats)

    def get_state(self) -> dict:
        """The recent loss vectors of each network (the GMM input when averaged)."""
        return {f"loss_history_{k + 1}": np.asarray(self.loss_history[k], np.float64)
                for k in (0, 1)}

    def set_state(self, state: dict) -> None:
        self.loss_history = [list(np.asarray(state[f"loss_history_{k + 1}"])) for k in (0, 1)]
