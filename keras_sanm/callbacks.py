"""Epoch-level hooks that the wrappers add to `fit` themselves."""

from __future__ import annotations

import keras


class EpochLearningRate(keras.callbacks.Callback):
    """Step-wise learning rate by epoch: `base * factor ** (number of drops passed)`.

    Args:
        base: learning rate at epoch 0.
        drop_epochs: epochs from which the rate is multiplied by `factor`
            (DivideMix/SANM CIFAR: `(150,)`).
        factor: multiplier per drop.
    """

    def __init__(self, base: float, drop_epochs=(), factor: float = 0.1):
        super().__init__()
        self.base, self.drop_epochs, self.factor = base, tuple(drop_epochs), factor

    def rate(self, epoch: int) -> float:
        return self.base * self.factor ** sum(epoch >= e for e in self.drop_epochs)

    def on_epoch_begin(self, epoch, logs=None):
        self.model.optimizer.learning_rate.assign(self.rate(epoch))

    def on_epoch_end(self, epoch, logs=None):
        if logs is not None:
            logs["learning_rate"] = self.rate(epoch)


class LabelQualityUpdate(keras.callbacks.Callback):
    """Refits the per-sample label quality at the start of each epoch.

    From `start_epoch` on, runs the model's eval pass over the training set
    (no augmentation, inference mode), fits the two-component GMM on the
    per-sample losses and hands the clean probabilities to the training data
    (methods.md §1.10, §2.3-2.4). Adds `label_quality`, `clean_fraction` and,
    when the true labels are known, `noise_auc` to the epoch logs.

    Args:
        source: the training data (an `IndexedDataset` or an `(x, y)` dataset).
        start_epoch: first epoch with a fit (before it, quality is 1).
        seed: base seed of the GMM initialisation.
    """

    def __init__(self, source, start_epoch: int = 1, seed: int | None = None):
        super().__init__()
        self.source, self.start_epoch, self.seed = source, start_epoch, seed
        self.stats: dict[str, float] = {}

    def on_epoch_begin(self, epoch, logs=None):
        self.stats = {}
        if epoch < self.start_epoch:
            return
        seed = None if self.seed is None else self.seed + epoch
        self.stats = self.model.update_label_quality(self.source, seed=seed)

    def on_epoch_end(self, epoch, logs=None):
        if logs is not None:
            logs.update(self.stats)

