"""Co-teaching's schedules: the forget rate and the Adam learning-rate decay (callbacks)."""

from __future__ import annotations

import keras

from keras_sanm.training.optimizers import base_optimizers, set_learning_rate


class ForgetRateSchedule(keras.callbacks.Callback):
    """Sets Co-teaching's forget rate at the start of every epoch (see docs/algorithms.md).

    Args:
        rate: `epoch -> forget rate` (the model's `forget_rate_at`).
    """

    def __init__(self, rate):
        super().__init__()
        self.rate = rate

    def on_epoch_begin(self, epoch, logs=None):
        self.model.forget_rate.assign(float(self.rate(epoch)))

    def on_epoch_end(self, epoch, logs=None):
        if logs is not None:  # the rate this epoch trained with
            logs["forget_rate"] = float(keras.ops.convert_to_numpy(self.model.forget_rate))


class AdamDecaySchedule(keras.callbacks.Callback):
    """Co-teaching's Adam schedule: from `decay_start`, the learning rate falls
    linearly to 0 at `total_epochs` and `beta_1` drops to `late_beta_1`.

    Epoch `e` here is epoch `e + 1` of the reference loop (its epoch 0 is an
    untrained evaluation), so the values match `CT-code`'s `alpha_plan` and
    `beta1_plan` step for step. Changing `beta_1` retraces the train function
    once (it is a constant of the compiled step).

    Args:
        base: initial learning rate (0.001).
        decay_start: reference epoch where the decay starts (80; CIFAR-100 100).
        total_epochs: reference `n_epoch` (200).
        beta_1: initial `beta_1` (0.9).
        late_beta_1: `beta_1` from `decay_start` (0.1).
    """

    def __init__(self, base: float = 0.001, decay_start: int = 80, total_epochs: int = 200,
                 beta_1: float = 0.9, late_beta_1: float = 0.1):
        super().__init__()
        self.base, self.decay_start, self.total_epochs = base, decay_start, total_epochs
        self.beta_1, self.late_beta_1 = beta_1, late_beta_1

    def values(self, epoch: int) -> tuple[float, float]:
        """`(learning_rate, beta_1)` of Keras epoch `epoch`."""
        i = epoch + 1
        if i < self.decay_start:
            return self.base, self.beta_1
        rate = self.base * max(self.total_epochs - i, 0) / (self.total_epochs - self.decay_start)
        return rate, self.late_beta_1

    def on_epoch_begin(self, epoch, logs=None):
        rate, beta_1 = self.values(epoch)
        optimizer = self.model.optimizer
        set_learning_rate(optimizer, rate)
        inner = base_optimizers(optimizer)
        if any(getattr(o, "beta_1", beta_1) != beta_1 for o in inner):
            for o in inner:
                o.beta_1 = beta_1
            self.model.make_train_function(force=True)

    def on_epoch_end(self, epoch, logs=None):
        if logs is not None:
            logs["learning_rate"] = self.values(epoch)[0]
