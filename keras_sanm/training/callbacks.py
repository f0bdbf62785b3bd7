"""Epoch-level hooks that the wrappers add to `fit` themselves."""

from __future__ import annotations

import math
import threading
import warnings

import keras
import numpy as np

from keras_sanm.data.image_files import ImageBatches
from keras_sanm.data.validation import check_images, is_lazy_images
from keras_sanm.label_quality import per_sample_cross_entropy, split_statistics
from keras_sanm.messages import inform
from keras_sanm.training.optimizers import set_learning_rate


class EpochLearningRate(keras.callbacks.Callback):
    """Step-wise learning rate by epoch: `base * factor ** (number of drops passed)`.

    With `reference_epochs`, the drops are those of a run of that length and
    move with the length of each `fit` (`fit_to_run`): the reference CE drops
    at epoch 150 of 300, so a 100-epoch fit drops at epoch 50 and a 300-epoch
    fit at 150, exactly as the reference. Without it, the drops are absolute
    epochs.

    Args:
        base: learning rate at epoch 0.
        drop_epochs: epochs (0-based) from which the rate is multiplied by
            `factor` (reference CE and DivideMix: `(150,)`).
        factor: multiplier per drop.
        reference_epochs: the run length `drop_epochs` belong to, or `None`
            for drops that do not scale.

    Example:
    >>> schedule = EpochLearningRate(0.02, (150,), 0.1, reference_epochs=300)
    >>> schedule.fit_to_run(100); schedule.drop_epochs
    (50,)
    """

    def __init__(self, base: float, drop_epochs=(), factor: float = 0.1,
                 reference_epochs: int | None = None):
        super().__init__()
        self.base, self.factor = base, factor
        self.reference_drops = tuple(int(e) for e in drop_epochs)
        self.drop_epochs = self.reference_drops
        self.reference_epochs = reference_epochs

    def fit_to_run(self, epochs: int) -> None:
        """Places the drops for a run of `epochs` epochs (scaled drops only)."""
        if self.reference_epochs:
            self.drop_epochs = tuple(
                max(1, round(e * epochs / self.reference_epochs)) for e in self.reference_drops
            )

    def rate(self, epoch: int) -> float:
        return self.base * self.factor ** sum(epoch >= e for e in self.drop_epochs)

    def on_epoch_begin(self, epoch, logs=None):
        set_learning_rate(self.model.optimizer, self.rate(epoch))

    def on_epoch_end(self, epoch, logs=None):
        if logs is not None:
            logs["learning_rate"] = self.rate(epoch)


class CosineEpochLearningRate(EpochLearningRate):
    """Cosine decay by epoch, as PyTorch's `CosineAnnealingLR` stepped once per epoch.

    `rate(e) = minimum + (base - minimum) * (1 + cos(pi * e / epochs)) / 2`,
    with `epochs` the length of each `fit` (`fit_to_run`). SSR's reference:
    0.02 to 4e-4 over 300 epochs.

    Args:
        base: learning rate at epoch 0.
        minimum: learning rate the decay approaches at the last epoch.
        epochs: run length until the first `fit` sets it.

    Example:
    >>> schedule = CosineEpochLearningRate(0.02, 4e-4, 300)
    >>> round(schedule.rate(150), 4)
    0.0102
    """

    def __init__(self, base: float, minimum: float = 0.0, epochs: int = 300):
        super().__init__(base)
        self.minimum, self.epochs = float(minimum), int(epochs)

    def fit_to_run(self, epochs: int) -> None:
        self.epochs = max(1, int(epochs))

    def rate(self, epoch: int) -> float:
        progress = math.pi * epoch / self.epochs
        return self.minimum + (self.base - self.minimum) * (1.0 + math.cos(progress)) / 2.0


class LabelQualityUpdate(keras.callbacks.Callback):
    """Refits the per-sample label quality at the start of each epoch.

    From `start_epoch` on, runs the model's eval pass over the training set
    (no augmentation, inference mode), fits the two-component GMM on the
    per-sample losses and hands the clean probabilities to the training data
    (docs/algorithms.md, "Label quality"). Adds `label_quality`, `clean_fraction` and,
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
        if epoch < self.start_epoch:
            # NaN before the first fit, so every epoch logs the same keys (CSV logs).
            labels = getattr(self.source, "labels", None)
            names = split_statistics(
                np.ones(1 if labels is None else len(labels)), labels,
                getattr(self.source, "clean_labels", None),
            )
            self.stats = {name: float("nan") for name in names}
            return
        seed = None if self.seed is None else self.seed + epoch
        self.stats = self.model.update_label_quality(self.source, seed=seed)

    def on_epoch_end(self, epoch, logs=None):
        if logs is not None:
            logs.update(self.stats)



class NonFiniteLossError(RuntimeError):
    """Training produced a NaN or infinite loss; raised by `NonFiniteLossGuard`."""


class NonFiniteLossGuard(keras.callbacks.Callback):
    """Stops training at the first non-finite loss, naming the step and the loss parts.

    Unlike `keras.callbacks.TerminateOnNaN`, which lets the epoch finish (and
    any checkpoint callback save the broken weights), this raises
    `NonFiniteLossError` from the batch, so no later callback of the run
    writes anything: the last checkpoint stays the last good one. The wrappers
    add it to every `fit`.

    The parts are the method's logged terms (e.g. `classification_loss`,
    `reconstruction_loss`) as running means over the epoch so far; a
    non-finite part is the one that broke. The logs are running means, so
    the first batch whose logged loss is non-finite is the step that broke.

    No host sync of its own in the training loop: the guard is `async_safe`,
    so where the backend allows it (JAX, PyTorch) and every callback is
    async-safe, Keras reads each batch's logs on a worker thread while the
    next steps run. The check then lags the step by a few batches, and the
    error still names the first non-finite batch: a check that finds one
    waits until every earlier batch is checked. It reaches the training
    loop at the next batch or at the latest before any end-of-epoch callback
    (Keras collects the worker threads first), so no checkpoint of the epoch
    is written. (TensorFlow's Keras reads the logs on the training thread.)
    """

    async_safe = True

    def __init__(self):
        super().__init__()
        self._condition = threading.Condition()
        self._checked: set[int] = set()
        self._first_bad: tuple | None = None

    def on_epoch_begin(self, epoch, logs=None):
        self.epoch = epoch
        optimizer = getattr(self.model, "optimizer", None)
        # (One read per epoch: the step count before this epoch's first batch.)
        self._steps_before = (int(keras.ops.convert_to_numpy(optimizer.iterations))
                              if optimizer is not None and optimizer.built else None)
        with self._condition:
            self._checked, self._first_bad = set(), None

    def on_train_batch_end(self, batch, logs=None):
        loss = None if not logs or "loss" not in logs else float(
            keras.ops.convert_to_numpy(logs["loss"]))
        with self._condition:
            self._checked.add(batch)
            if loss is not None and not np.isfinite(loss):
                parts = {name: float(keras.ops.convert_to_numpy(value))
                         for name, value in logs.items()
                         if name != "loss" and np.size(keras.ops.convert_to_numpy(value)) == 1}
                if self._first_bad is None or batch < self._first_bad[0]:
                    self._first_bad = (batch, loss, parts)
            self._condition.notify_all()
            if self._first_bad is None:
                return
            # Checks of earlier batches may still run on other threads: name the first.
            self._condition.wait_for(
                lambda: all(b in self._checked for b in range(self._first_bad[0])), timeout=60)
            raise self._error(*self._first_bad)

    def _error(self, batch: int, loss: float, parts: dict) -> NonFiniteLossError:
        broken = sorted(name for name, value in parts.items() if not np.isfinite(value))
        described = ", ".join(f"{name}={value:.4g}" for name, value in sorted(parts.items()))
        step = -1 if getattr(self, "_steps_before", None) is None else (
            self._steps_before + batch + 1)
        return NonFiniteLossError(
            f"The loss became {loss} at epoch {getattr(self, 'epoch', 0)}, batch {batch} "
            f"(optimizer step {step}). Non-finite parts: {', '.join(broken) or 'none'}; "
            f"all parts (epoch means so far): {described or 'none logged'}. Training "
            "stopped before any checkpoint of this epoch was written. Lower the learning "
            "rate, check the data for extreme values, or use float32 if a mixed "
            "precision policy is set; then resume from the last checkpoint."
        )



class LabelFitMonitor(keras.callbacks.Callback):
    """How much of the noisy training labels the model fits, by label kind.

    After the last epoch (and every `every` epochs when set), predicts the
    training images in inference mode without augmentation and logs, as
    fractions:

    * `fit_noisy_labels`: predictions equal to the given (noisy) label;
    * `fit_correct_labels`: the same among samples whose label is correct;
    * `memorised_wrong_labels`: the same among samples whose label is wrong
      (the network has learned the wrong label);
    * `wrong_predicted_true`: samples with a wrong label predicted as their
      true class;
    * `loss_correct_labels` / `loss_wrong_labels`: the mean cross-entropy
      against the given label of samples whose label is correct / wrong.

    `fit_noisy_labels` above the fraction of correct labels means the
    network has started to fit wrong labels. Other epochs log NaN, so every
    epoch has the same keys (CSV logs).

    Args:
        images: `(N, H, W, C)` raw training images, as passed to `fit`
            (the model preprocesses them).
        labels: `(N,)` the given (noisy) labels.
        true_labels: `(N,)` the true labels.
        every: also evaluate every `every` epochs (`None`: the last only).
        batch_size: prediction batch size.

    Example:
    >>> monitor = LabelFitMonitor(x_train, y_noisy, y_true, every=10)
    >>> model.fit(..., callbacks=[monitor])
    """

    NAMES = ("fit_noisy_labels", "fit_correct_labels", "memorised_wrong_labels",
             "wrong_predicted_true", "loss_correct_labels", "loss_wrong_labels")

    def __init__(self, images, labels, true_labels, every: int | None = None,
                 batch_size: int = 256):
        super().__init__()
        self.images = images if is_lazy_images(images) else np.asarray(images)
        check_images(self.images)
        self.labels = np.asarray(labels).reshape(-1)
        self.true_labels = np.asarray(true_labels).reshape(-1)
        if len(self.labels) != len(images) or len(self.true_labels) != len(images):
            raise ValueError("images, labels and true_labels must have the same length.")
        if every is not None and every < 1:
            raise ValueError(f"every must be a positive number of epochs; got {every}.")
        self.every, self.batch_size = every, batch_size

    def measure(self) -> dict[str, float]:
        """The fractions and losses of `NAMES` for the model as it is now."""
        scores = keras.ops.convert_to_numpy(
            self.model.predict(ImageBatches(self.images, batch_size=self.batch_size),
                               verbose=0))
        predicted = np.argmax(scores, axis=-1)
        losses = per_sample_cross_entropy(scores, self.labels,
                                          getattr(self.model, "from_logits", True))
        wrong = self.labels != self.true_labels

        def mean(values, where):
            return float(np.mean(values[where])) if np.any(where) else float("nan")

        fits = predicted == self.labels
        return {
            "fit_noisy_labels": float(np.mean(fits)),
            "fit_correct_labels": mean(fits, ~wrong),
            "memorised_wrong_labels": mean(fits, wrong),
            "wrong_predicted_true": mean(predicted == self.true_labels, wrong),
            "loss_correct_labels": mean(losses, ~wrong),
            "loss_wrong_labels": mean(losses, wrong),
        }

    def on_epoch_end(self, epoch, logs=None):
        if logs is None:
            return
        last = epoch + 1 == self.params.get("epochs")
        due = self.every is not None and (epoch + 1) % self.every == 0
        logs.update(self.measure() if last or due else dict.fromkeys(self.NAMES, float("nan")))


class NoiseRateEstimate(keras.callbacks.Callback):
    """Sets a method's noise rate once, when the user gave none, from the model itself.

    After `epochs` epochs of training, the share of training samples whose
    clean probability (the loss GMM of `label_quality`) is below 0.5 becomes
    the rate (at most `LIMIT`), and the choice is reported
    (`keras_sanm.messages.inform`; a `UserWarning` when the model is near
    chance). Until then the
    method runs without it (rate 0: CDR as cross-entropy, Co-teaching
    keeping every sample). A resumed run restores the estimate.

    Args:
        source: the training data of the `fit`.
        epochs: epochs of training before the estimate.
        name: the option's name, for the message (`"noise_rate"`).
        rate: `() -> float | None`, the method's current rate.
        assign: `float -> None`, sets the method's rate.
    """

    LIMIT = 0.9

    def __init__(self, source, epochs: int, name: str, rate, assign):
        super().__init__()
        self.source, self.epochs, self.name = source, int(epochs), name
        self.rate, self.assign = rate, assign

    def on_epoch_end(self, epoch, logs=None):
        if self.rate() is not None or epoch + 1 < self.epochs:
            return
        quality = self.model.training_label_quality(self.source)
        rate = min(float(np.mean(quality < 0.5)), self.LIMIT)
        self.assign(rate)
        inform(f"{self.name}={rate:.3f}: estimated after epoch {epoch + 1} as the share of "
               f"training samples the loss GMM finds noisy (pass {self.name}= to set it).")
        accuracy = (logs or {}).get("accuracy")
        classes = getattr(self.model, "num_classes", None)
        if accuracy is not None and classes and float(accuracy) < 2.0 / classes:
            # A model near chance has no clean/noisy loss structure to split.
            warnings.warn(f"The model fits {float(accuracy):.0%} of its training labels "
                          f"(chance: {1 / classes:.0%}), so the estimate {self.name}="
                          f"{rate:.3f} is unreliable; pass {self.name}= or a larger "
                          "estimate_after.", UserWarning, stacklevel=2)

    def get_state(self) -> dict:
        rate = self.rate()
        return {"rate": -1.0 if rate is None else float(rate)}

    def set_state(self, state: dict) -> None:
        rate = float(state["rate"])
        if rate >= 0:
            self.assign(rate)



# Method-specific callbacks live with their method; importable from here too,
# loaded on first use so that this module does not import the method folders.
_METHOD_CALLBACKS = {
    "AdamDecaySchedule": "keras_sanm.methods.coteaching.schedules",
    "ForgetRateSchedule": "keras_sanm.methods.coteaching.schedules",
    "CoDivide": "keras_sanm.methods.dividemix.co_divide",
}


def __getattr__(name):
    if name in _METHOD_CALLBACKS:
        import importlib

        return getattr(importlib.import_module(_METHOD_CALLBACKS[name]), name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
