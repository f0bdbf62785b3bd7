"""The epoch loop of methods whose networks take turns: an epoch plan in, steps out.

Keras' `fit` fixes the number of steps per epoch at the first epoch and
runs one step function; DivideMix and ELR+ train network 1, then network 2,
every epoch, with a number of steps that can change from epoch to epoch
(DivideMix's labelled set). `fit_in_turns` runs such epochs with Keras'
own callback machinery (`keras.callbacks.CallbackList`: History, the
progress bar with each epoch's step count, user callbacks,
`model.stop_training`, validation logs), through public API only.
"""

from __future__ import annotations

import concurrent.futures
from collections.abc import Callable, Sequence

import keras


class MethodCallbacks:
    """The method's own callbacks, called directly so that they share one logs dict.

    A `CallbackList` copies the logs; the method's callbacks write epoch
    statistics into them (the data split's sizes) for the user's callbacks.
    """

    def __init__(self, callbacks, model):
        self.callbacks = list(callbacks)
        for callback in self.callbacks:
            callback.set_model(model)

    def __getattr__(self, hook):
        def call(*args):
            for callback in self.callbacks:
                getattr(callback, hook)(*args)

        return call


def resume_epoch(callbacks, initial_epoch: int) -> int:
    """The epoch to start from: the one a callback restored (`restored_epoch`), else `initial_epoch`.

    `keras_sanm.training.callbacks.TrainingBackup` sets `restored_epoch` in
    `on_train_begin` when it restores a checkpoint.
    """
    restored = [c.restored_epoch for c in callbacks
                if getattr(c, "restored_epoch", None) is not None]
    return max(restored) if restored else int(initial_epoch)


def fit_in_turns(
    model: keras.Model,
    epoch_plan: Callable[[int], Sequence[tuple]],
    train_step: Callable,
    epoch_logs: Callable[[], dict],
    epochs: int,
    callbacks=None,
    method_callbacks=(),
    validation_data=None,
    verbose: int = 1,
    initial_epoch: int = 0,
) -> keras.callbacks.History:
    """Trains `model` epoch by epoch, each epoch a sequence of phases.

    Args:
        model: the Keras model (given to the callbacks, evaluated on
            `validation_data`, stopped by `model.stop_training`).
        epoch_plan: `epoch -> [(phase, steps, make_batch), ...]`, called at
            the start of each epoch after the method's callbacks.
        train_step: `(phase, batch) -> logs` (running means of the epoch).
            `make_batch(step)` builds the next batch in a background thread
            while the current step runs.
        epoch_logs: `() -> logs` of the finished epoch.
        epochs: index of the last epoch + 1.
        callbacks: the user's Keras callbacks (run after the method's).
        method_callbacks: the method's own callbacks (share the logs dict).
        validation_data: `(x, y)` or a dataset, evaluated after every epoch
            (`val_` logs).
        verbose: 0 silent, 1 progress bar, 2 one line per epoch.
        initial_epoch: epoch to start from, unless a callback restored a
            later one (`resume_epoch`).

    Returns:
        The Keras `History` (also `model.history`).
    """
    callbacks = list(callbacks or [])
    method = MethodCallbacks(method_callbacks, model)
    user = keras.callbacks.CallbackList(
        callbacks, add_history=True, add_progbar=verbose != 0, verbose=verbose,
        epochs=epochs, steps=None, model=model,
    )
    model.stop_training = False
    method.on_train_begin()
    user.on_train_begin()
    logs: dict = {}
    with concurrent.futures.ThreadPoolExecutor(1) as loader:
        for epoch in range(resume_epoch(callbacks + method.callbacks, initial_epoch), epochs):
            model.reset_metrics()
            method.on_epoch_begin(epoch)
            plan = epoch_plan(epoch)
            user.set_params({"verbose": verbose, "epochs": epochs,
                             "steps": sum(len(steps) for _, steps, _ in plan)})
            user.on_epoch_begin(epoch)
            run_phases(plan, train_step, loader, model, method, user)
            logs = epoch_logs()
            if validation_data is not None:
                arguments = validation_data if isinstance(validation_data, (tuple, list)) else (
                    validation_data,)
                results = model.evaluate(*arguments, verbose=0, return_dict=True)
                logs.update({f"val_{name}": value for name, value in results.items()})
            method.on_epoch_end(epoch, logs)
            user.on_epoch_end(epoch, logs)
            if model.stop_training:
                break
    method.on_train_end(logs)
    user.on_train_end(logs)
    return model.history


def run_phases(plan, train_step, loader, model, method, user) -> None:
    """One epoch's steps, phase after phase; the next batch is built while a step runs."""
    step = 0
    for phase, steps, make_batch in plan:
        pending = loader.submit(make_batch, steps[0]) if len(steps) else None
        for i in range(len(steps)):
            batch = pending.result()
            if i + 1 < len(steps):
                pending = loader.submit(make_batch, steps[i + 1])
            user.on_train_batch_begin(step)
            logs = train_step(phase, batch)
            method.on_train_batch_end(step, logs)
            user.on_train_batch_end(step, logs)
            step += 1
            if model.stop_training:  # as Keras' loop: a callback may stop mid-epoch
                return
