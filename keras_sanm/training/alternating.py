"""`AlternatingTrainer`: two networks that train one after another within each epoch."""

from __future__ import annotations

from keras import ops

from keras_sanm.backend import compile_phase_step, distribute_batch
from keras_sanm.data.validation import check_class_count
from keras_sanm.training.phases import Phase
from keras_sanm.training.turn_loop import fit_in_turns
from keras_sanm.training.two_networks import TwoNetworkTrainer


class AlternatingTrainer(TwoNetworkTrainer):
    """Two networks trained in turn: network 1's pass, then network 2's, every epoch.

    DivideMix and ELR+ train like this. A step trains one network, chosen by
    its phase `(kind, k)`, which the step receives as an argument; each
    phase has its own compiled step function (`train_phase_on_batch`).
    `fit` runs the epochs with `keras_sanm.training.turn_loop.fit_in_turns`, because
    the number of steps per pass can change every epoch (Keras fixes it at
    the first epoch). Batches are dicts built by the data side in a
    background thread.

    A subclass defines `phase_kinds`, `training_data(x, y, batch_size, shuffle, verbose)` and
    `epoch_plan(data, epoch) -> [(phase, steps, make_batch), ...]`.
    """

    phase_kinds: tuple[str, ...] = ("train",)
    steps_train_one_network = True
    one_step_per_call = True

    # ------------------------------------------------------------------ phases
    @property
    def default_phase(self) -> Phase:
        """The phase of Keras' `train_step` (`train_on_batch`): the first kind, network 1."""
        return Phase(self.phase_kinds[0], 0)

    @property
    def phase(self) -> Phase | None:
        """The phase of the last step run by `train_phase_on_batch` (for callbacks).

        Steps never read it: they receive their phase as an argument.
        """
        return self._held.phase

    def check_phase(self, phase) -> Phase:
        """`phase` as a `Phase`, checked against the method's kinds and networks."""
        kind, network = phase
        if kind not in self.phase_kinds or network not in (0, 1):
            raise ValueError(
                f"Unknown phase ({kind!r}, {network!r}) for method={self.method_name!r}: "
                f"kinds {self.phase_kinds}, networks 0 and 1.")
        return Phase(kind, network)

    def train_phase_on_batch(self, phase, batch) -> dict:
        """Runs one training step of `phase` on `batch`; returns the logs as floats.

        Each phase has its own step function, compiled at its first use by
        the backend (`keras_sanm.backend.compile_phase_step`). The logs are
        running means since the last `reset_metrics()` (the epoch's, in `fit`).

        Args:
            phase: `(kind, network)`, e.g. `("train", 1)`.
            batch: a batch from the method's data (`epoch_plan`'s `make_batch`).
        """
        phase = self.check_phase(phase)
        if not self.compiled:
            self.compile()
        self.input_pipeline.decide_preprocessing_from_batch(batch)
        steps = self._held.train_functions
        if phase not in steps:
            steps[phase] = compile_phase_step(self, phase)
        self._held.phase = phase
        logs = steps[phase]((distribute_batch(self, batch),))
        return {name: float(ops.convert_to_numpy(value)) for name, value in logs.items()}

    def step_variables(self, phase):
        k = phase.network
        return self.optimizer.groups[k], self.optimizer.optimizers[k]

    def batch_size_of(self, data):
        batch = data[0]
        if isinstance(batch, dict):
            return ops.shape(batch["labels"])[0]
        return ops.shape(batch)[0]

    # --------------------------------------------------------------------- fit
    def check_training_data(self, data) -> None:
        """Checks the classes and image shape of the training data against the model."""
        check_class_count(data.num_classes, self.num_classes)
        if self.image_shape is not None and data.images.shape[1:] != self.image_shape:
            raise ValueError(
                f"Images have shape {data.images.shape[1:]}; the model expects {self.image_shape}."
            )
        self.input_pipeline.decide_preprocessing(data.images)

    def epoch_plan(self, data, epoch: int):  # pragma: no cover - abstract
        raise NotImplementedError

    def epoch_log_names(self) -> list[str]:
        """Names logged every epoch (NaN when a phase did not produce them)."""
        return list(self._trackers)

    @property
    def default_epochs(self) -> int:
        """The epochs of a `fit` that names none: the reference run's."""
        return self.reference_epochs

    # The `fit` options these methods take besides the data, epochs and callbacks.
    fit_options = ("validation_data", "verbose", "initial_epoch")

    def check_fit_options(self, shuffle: bool, options: dict) -> None:
        """Refuses options the turn loop does not take, and an unshuffled run."""
        unknown = sorted(set(options) - set(self.fit_options))
        if unknown:
            raise ValueError(f"method={self.method_name!r} fit() does not take {unknown}.")
        if not shuffle:
            raise ValueError(f"method={self.method_name!r} draws each epoch's batches in a new "
                             "random order, as its reference does; shuffle=False is not "
                             "supported.")

    def run_epochs(self, data, epochs: int, method_callbacks: list, callbacks: list,
                   options: dict):
        """Trains both networks epoch by epoch, as the reference does
        (`keras_sanm.training.turn_loop.fit_in_turns`).

        `validation_data` (`(x, y)` arrays or a dataset of `(x, y)`) is
        evaluated with both networks after every epoch (`val_accuracy`).
        """
        # Batches are dicts, which Keras cannot trace the model with; every
        # sub-model is already built.
        self.build()
        verbose = options.get("verbose", "auto")
        return fit_in_turns(
            self, lambda epoch: self.epoch_plan(data, epoch), self.train_phase_on_batch,
            self.finished_epoch_logs, epochs, callbacks=callbacks,
            method_callbacks=method_callbacks, validation_data=options.get("validation_data"),
            verbose=1 if verbose == "auto" else verbose,
            initial_epoch=options.get("initial_epoch", 0),
        )

    def finished_epoch_logs(self) -> dict:
        """The epoch's mean of every `epoch_log_names()` entry, NaN for one no phase logged.

        Every epoch logs the same keys, so CSV logs and History stay aligned.
        """
        logs = {}
        for name in self.epoch_log_names():
            tracker = self._trackers[name]
            seen = float(ops.convert_to_numpy(tracker.count)) > 0
            logs[name] = float(ops.convert_to_numpy(tracker.result())) if seen else float("nan")
        return logs
