"""`AlternatingTrainer`: two networks that train one after another within each epoch."""

from __future__ import annotations

import concurrent.futures
import functools

import keras
from keras import ops

from keras_sanm.backend import distribute_batch
from keras_sanm.distribution import check_batch_size
from keras_sanm.two_networks import TwoNetworkTrainer
from keras_sanm.validation import check_class_count


class MethodCallbacks:
    """The method's own callbacks, sharing one logs dict with the caller."""

    def __init__(self, callbacks, model):
        self.callbacks = list(callbacks)
        for callback in self.callbacks:
            callback.set_model(model)

    def __getattr__(self, hook):
        def call(*args):
            for callback in self.callbacks:
                getattr(callback, hook)(*args)

        return call


class AlternatingTrainer(TwoNetworkTrainer):
    """Two networks trained in turn: network 1's pass, then network 2's, every epoch.

    DivideMix and ELR+ train like this. A step trains one network, chosen by
    the current phase `(kind, k)`; each phase has its own compiled step
    function. `fit` runs the epoch loop itself, because the number of steps
    per pass can change every epoch (Keras fixes it at the first epoch), and
    drives an ordinary `CallbackList` (History, progress bar with the right
    step count, user callbacks, `stop_training`, validation). Batches are
    dicts built by the data side in a background thread.

    A subclass defines `phase_kinds`, `training_data(x, y, batch_size, verbose)` and
    `epoch_plan(data, epoch) -> [(phase, steps, make_batch), ...]`.
    """

    phase_kinds: tuple[str, ...] = ("train",)
    epochs = 1

    # ------------------------------------------------------------------ phases
    @property
    def phase(self):
        """`(kind, k)`: the phase kind and the network trained."""
        return self._held.phase or (self.phase_kinds[0], 0)

    def set_phase(self, kind: str, network: int) -> None:
        """Selects what the next steps train, with its compiled step function."""
        if kind not in self.phase_kinds or network not in (0, 1):
            raise ValueError(f"Unknown phase ({kind!r}, {network!r}).")
        functions = self._held.train_functions
        self._held.phase = (kind, network)
        if (kind, network) not in functions:
            # A distinct step function object per phase: compiled-function
            # caches (jax.jit) are keyed on the function, and the phase is read
            # when the step is traced.
            object.__setattr__(self, "train_step", functools.partial(type(self).train_step, self))
            try:
                self.train_function = None
                self.make_train_function()
            finally:
                object.__delattr__(self, "train_step")
            functions[(kind, network)] = self.train_function
        self.train_function = functions[(kind, network)]

    def step_variables(self):
        k = self.phase[1]
        return self.optimizer.groups[k], self.optimizer.optimizers[k]

    def batch_size_of(self, data):
        batch = data[0]
        if isinstance(batch, dict):
            return ops.shape(batch["labels"])[0]
        return ops.shape(batch)[0]

    def compile(self, optimizer=None, weight_decay=None, loss=None, metrics=None, **kwargs):
        """As `TwoNetworkTrainer.compile`; one step per call."""
        if kwargs.get("steps_per_execution", 1) != 1:
            raise ValueError(
                f"method={self.method_name!r} runs one step per call; "
                "steps_per_execution must be 1."
            )
        super().compile(optimizer, weight_decay, loss, metrics, **kwargs)

    # --------------------------------------------------------------------- fit
    def training_data(self, x, y, batch_size=None, verbose=1):  # pragma: no cover - abstract
        raise NotImplementedError

    def check_training_data(self, data) -> None:
        """Checks the classes and image shape of the training data against the model."""
        check_class_count(data.num_classes, self.num_classes)
        if self.image_shape is not None and data.images.shape[1:] != self.image_shape:
            raise ValueError(
                f"Images have shape {data.images.shape[1:]}; the model expects {self.image_shape}."
            )
        self.decide_preprocessing(data.images)

    def epoch_plan(self, data, epoch: int):  # pragma: no cover - abstract
        raise NotImplementedError

    def epoch_log_names(self) -> list[str]:
        """Names logged every epoch (NaN when a phase did not produce them)."""
        return list(self._trackers)

    def fit(self, x=None, y=None, batch_size=None, epochs=None, callbacks=None,
            validation_data=None, verbose="auto", initial_epoch: int = 0, **kwargs):
        """Trains both networks, epoch by epoch, as the reference does.

        Args:
            x: numpy images with `y`, or the method's indexed data object.
            y: noisy integer labels when `x` is an array.
            batch_size: batch size for array input (default: the method's).
            epochs: last epoch index; default the method's (reference) count.
            callbacks: Keras callbacks (run after the method's own).
            validation_data: `(x, y)` arrays or a dataset of `(x, y)`,
                evaluated with both networks after every epoch (`val_accuracy`).
            verbose: 0 silent, 1 or `"auto"` progress bar, 2 one line per epoch.
            initial_epoch: epoch to start from.

        Returns:
            The Keras `History`.
        """
        if kwargs:
            raise ValueError(
                f"method={self.method_name!r} fit() does not take {sorted(kwargs)}."
            )
        if not self.compiled:
            self.compile()
        # Batches are dicts, which Keras cannot trace the model with; every
        # sub-model is already built.
        self.build()
        epochs = self.epochs if epochs is None else int(epochs)
        self.fit_schedule_to_run(epochs)
        data = self.training_data(x, y, batch_size, verbose=verbose)
        self.check_validation_data(validation_data)
        check_batch_size(data.batch_size)
        check_batch_size(getattr(data, "warmup_batch_size", None), "warmup_batch_size")
        verbose = 1 if verbose == "auto" else verbose
        # Called directly (not through a CallbackList, which copies the logs)
        # so that their epoch statistics reach the user's callbacks.
        method_callbacks = self.method_callbacks(data)
        self.start_fit(data, method_callbacks)
        method = MethodCallbacks(method_callbacks, self)
        user = keras.callbacks.CallbackList(
            callbacks, add_history=True, add_progbar=verbose != 0, verbose=verbose,
            epochs=epochs, steps=None, model=self,
        )
        self.stop_training = False
        method.on_train_begin()
        user.on_train_begin()
        # A `TrainingBackup` that restored a checkpoint sets the epoch to resume from.
        initial_epoch = self._initial_epoch or initial_epoch
        epoch_logs: dict = {}
        with concurrent.futures.ThreadPoolExecutor(1) as loader:
            for epoch in range(initial_epoch, epochs):
                self.reset_metrics()
                method.on_epoch_begin(epoch)
                plan = self.epoch_plan(data, epoch)
                user.set_params(
                    {"verbose": verbose, "epochs": epochs, "steps": sum(len(p[1]) for p in plan)}
                )
                user.on_epoch_begin(epoch)
                step = 0
                for phase, steps, make_batch in plan:
                    self.set_phase(*phase)
                    pending = loader.submit(make_batch, steps[0]) if steps else None
                    for i in range(len(steps)):
                        batch = pending.result()
                        if i + 1 < len(steps):
                            pending = loader.submit(make_batch, steps[i + 1])
                        user.on_train_batch_begin(step)
                        logs = self.train_on_batch(distribute_batch(self, batch), return_dict=True)
                        method.on_train_batch_end(step, logs)
                        user.on_train_batch_end(step, logs)
                        step += 1
                        if self.stop_training:  # as Keras' loop: a callback may stop mid-epoch
                            break
                    if self.stop_training:
                        break
                # Every epoch logs the same keys (NaN for terms of the other
                # phase), so CSV logs and History stay aligned.
                epoch_logs = {
                    name: (float(ops.convert_to_numpy(self._trackers[name].result()))
                           if float(ops.convert_to_numpy(self._trackers[name].count)) > 0
                           else float("nan"))
                    for name in self.epoch_log_names()
                }
                if validation_data is not None:
                    results = (
                        self.evaluate(*validation_data, verbose=0, return_dict=True)
                        if isinstance(validation_data, (tuple, list))
                        else self.evaluate(validation_data, verbose=0, return_dict=True)
                    )
                    epoch_logs.update({f"val_{k}": v for k, v in results.items()})
                method.on_epoch_end(epoch, epoch_logs)
                user.on_epoch_end(epoch, epoch_logs)
                if self.stop_training:
                    break
        method.on_train_end(epoch_logs)
        user.on_train_end(epoch_logs)
        return self.history
