"""Epoch-level hooks that the wrappers add to `fit` themselves."""

from __future__ import annotations

import keras
import numpy as np

from keras_sanm.data.image_files import ImageBatches
from keras_sanm.label_quality import (
    clean_probability,
    normalise_losses,
    per_sample_cross_entropy,
    split_statistics,
)
from keras_sanm.optimizers import set_learning_rate
from keras_sanm.validation import check_images, is_lazy_images


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
        inner = getattr(optimizer, "optimizers", None) or [optimizer]
        if any(getattr(o, "beta_1", beta_1) != beta_1 for o in inner):
            for o in inner:
                o.beta_1 = beta_1
            self.model.make_train_function(force=True)

    def on_epoch_end(self, epoch, logs=None):
        if logs is not None:
            logs["learning_rate"] = self.values(epoch)[0]


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
    non-finite part is the one that broke.
    """

    def on_epoch_begin(self, epoch, logs=None):
        self.epoch = epoch

    def on_train_batch_end(self, batch, logs=None):
        if not logs or "loss" not in logs:
            return
        loss = float(keras.ops.convert_to_numpy(logs["loss"]))
        if np.isfinite(loss):
            return
        parts = {name: float(keras.ops.convert_to_numpy(value)) for name, value in logs.items()
                 if name != "loss" and np.size(keras.ops.convert_to_numpy(value)) == 1}
        broken = sorted(name for name, value in parts.items() if not np.isfinite(value))
        described = ", ".join(f"{name}={value:.4g}" for name, value in sorted(parts.items()))
        optimizer = getattr(self.model, "optimizer", None)
        step = int(keras.ops.convert_to_numpy(optimizer.iterations)) if optimizer else -1
        raise NonFiniteLossError(
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
    the rate (at most `LIMIT`), and the choice is printed. Until then the
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
        print(f"{self.name}={rate:.3f}: estimated after epoch {epoch + 1} as the share of "
              f"training samples the loss GMM finds noisy (pass {self.name}= to set it).")
        accuracy = (logs or {}).get("accuracy")
        classes = getattr(self.model, "num_classes", None)
        if accuracy is not None and classes and float(accuracy) < 2.0 / classes:
            # A model near chance has no clean/noisy loss structure to split.
            print(f"Warning: the model fits {float(accuracy):.0%} of its training labels "
                  f"(chance: {1 / classes:.0%}), so this estimate is unreliable; pass "
                  f"{self.name}= or a larger estimate_after.")

    def get_state(self) -> dict:
        rate = self.rate()
        return {"rate": -1.0 if rate is None else float(rate)}

    def set_state(self, state: dict) -> None:
        rate = float(state["rate"])
        if rate >= 0:
            self.assign(rate)
