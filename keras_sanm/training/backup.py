"""`TrainingBackup`: resumable end-of-epoch checkpoints of a noisy-label run."""

from __future__ import annotations

import json
import os
import shutil
import time
import warnings

import keras
import numpy as np

from keras_sanm.training.callbacks import NonFiniteLossError

POINTER = "latest.json"


class TrainingBackup(keras.callbacks.Callback):
    """Writes the whole training state after every epoch and restores it when `fit` starts.

    Like `keras.callbacks.BackupAndRestore`, and built on the same Keras
    mechanism (`model.save_weights` / `load_weights`: every network and
    decoder, the optimizer slots and step counter, per-sample model state
    such as ELR+ targets and weight averages, and, through the wrappers'
    `save_own_variables`, every random-seed state). In addition it keeps
    what lives outside the model's variables: the training data's random
    state, sample order and clean probabilities, the method callbacks' state
    (DivideMix's loss history), the per-epoch logs so far (`history`) and
    the time spent in `fit` so far (`training_seconds`, summed over resumes).

    A checkpoint is a folder `epoch_<n>` written in full before the pointer
    file `latest.json` is atomically replaced, so a run killed at any moment
    (inside an epoch, during a GMM split, while writing) resumes from the
    last complete epoch; an interrupted epoch is rerun from its start, and
    on CPU the resumed run ends bit-identical to an uninterrupted one. No
    checkpoint is written after a non-finite loss or non-finite weights.

    Args:
        directory: folder of the checkpoints (created when needed).
        run_config: optional JSON description of the run; resuming with a
            different one is refused, naming the keys that differ.

    Example:
    >>> backup = keras_sanm.TrainingBackup("runs/dm/checkpoint")
    >>> model.fit(x, y_noisy, epochs=300, callbacks=[backup])  # rerun to resume
    >>> backup.history["val_accuracy"]  # every epoch, before and after a resume
    >>> backup.training_seconds  # the whole run's time in fit, all resumes together
    """

    def __init__(self, directory: str | os.PathLike, run_config: dict | None = None):
        super().__init__()
        self.directory = os.fspath(directory)
        self.run_config = run_config
        self.history: dict[str, list[float]] = {}
        self.restored_epoch: int | None = None
        # Seconds in fit up to the restored checkpoint (None: a checkpoint
        # that predates the count), and when this fit started and ended.
        self._seconds_before: float | None = 0.0
        self._started = self._ended = None

    @property
    def training_seconds(self) -> float | None:
        """Seconds spent in `fit` by the whole run, up to its last epoch.

        A resumed run adds the time recorded in its checkpoint (the time of
        an interrupted epoch, which is redone, is not counted twice). `None`
        when resuming from a checkpoint that does not record it.
        """
        if self._seconds_before is None or self._started is None:
            return None
        return self._seconds_before + ((self._ended or time.monotonic()) - self._started)

    # ------------------------------------------------------------------ reading
    @staticmethod
    def latest(directory: str | os.PathLike) -> dict | None:
        """The description (`state.json`) of the newest complete checkpoint, or `None`."""
        pointer = os.path.join(os.fspath(directory), POINTER)
        if not os.path.exists(pointer):
            return None
        with open(pointer) as f:
            folder = os.path.join(os.fspath(directory), json.load(f)["folder"])
        with open(os.path.join(folder, "state.json")) as f:
            state = json.load(f)
        state["folder"] = folder
        return state

    def _objects(self) -> dict:
        objects = getattr(self.model, "resumable_state", dict)()
        source = getattr(getattr(self.model, "_active_fit", None), "source", None)
        if source is not None and "data" not in objects:
            warnings.warn(
                "The training data has no sample identities (a tf.data.Dataset or "
                "PyDataset), so its order and random state are not checkpointed: a "
                "resumed run restarts its pipeline. Pass arrays or an IndexedDataset for "
                "exact resumption.",
                stacklevel=2,
            )
        return objects

    # --------------------------------------------------------------- restoring
    def on_train_begin(self, logs=None):
        self.history, self.restored_epoch = {}, None
        self._seconds_before, self._started, self._ended = 0.0, time.monotonic(), None
        state = self.latest(self.directory)
        if state is None:
            return
        if self.run_config is not None and state.get("run_config") is not None:
            saved = state["run_config"]
            differ = sorted(k for k in set(saved) | set(self.run_config)
                            if saved.get(k) != self.run_config.get(k))
            if differ:
                raise ValueError(
                    f"The checkpoint in {self.directory} belongs to a run with other "
                    "settings ("
                    + ", ".join(f"{k}: {saved.get(k)!r} then, {self.run_config.get(k)!r} now"
                                for k in differ)
                    + "). "
                    "Resume with the same settings, or start a new run in another folder."
                )
        model = self.model
        saved_class, objects = state.get("model_class"), self._objects()
        saved_objects = state.get("objects", {})
        if saved_class != type(model).__name__ or set(saved_objects) != set(objects):
            raise ValueError(
                f"The checkpoint in {self.directory} was written by a {saved_class} with "
                f"state for {sorted(saved_objects)}; this run trains a "
                f"{type(model).__name__} with state for {sorted(objects)}. Resume with the "
                "same method, SANM setting and data type, or use another folder."
            )
        if model.optimizer is not None and not model.optimizer.built:
            model.optimizer.build(model.trainable_variables)
        model.load_weights(os.path.join(state["folder"], "model.weights.h5"))
        with np.load(os.path.join(state["folder"], "state.npz")) as arrays:
            for name, target in objects.items():
                values = dict(saved_objects[name])
                prefix = f"{name}/"
                values.update({k[len(prefix):]: arrays[k] for k in arrays.files
                               if k.startswith(prefix)})
                target.set_state(values)
        self.history = {k: list(v) for k, v in state["history"].items()}
        self.restored_epoch = int(state["epoch"])
        self._seconds_before = state.get("training_seconds")
        # Keras' `fit` starts from `_initial_epoch` (as its own BackupAndRestore
        # sets it); `turn_loop.fit_in_turns` reads `restored_epoch`.
        model._initial_epoch = self.restored_epoch

    def on_train_end(self, logs=None):
        self._ended = time.monotonic()
        # Keras reads `_initial_epoch` once, after `on_train_begin`.
        self.model._initial_epoch = None

    # ------------------------------------------------------------------ saving
    def on_epoch_end(self, epoch, logs=None):
        logs = dict(logs or {})
        loss = logs.get("loss")
        if loss is not None and not np.isfinite(float(loss)):
            raise NonFiniteLossError(
                f"Epoch {epoch} ended with loss {float(loss)}; no checkpoint written "
                f"(the last good one is kept in {self.directory})."
            )
        broken = [v.path for v in self.model.trainable_variables
                  if not np.isfinite(keras.ops.convert_to_numpy(v)).all()]
        if broken:
            raise NonFiniteLossError(
                f"After epoch {epoch}, {len(broken)} weights hold NaN or Inf (first: "
                f"{broken[0]}); no checkpoint written (the last good one is kept in "
                f"{self.directory})."
            )
        for name, value in logs.items():
            self.history.setdefault(name, []).append(float(value))
        self.save(epoch + 1)

    def save(self, epoch: int) -> str:
        """Writes the checkpoint of the state after `epoch` epochs; returns its folder."""
        os.makedirs(self.directory, exist_ok=True)
        name = f"epoch_{epoch:05d}"
        partial = os.path.join(self.directory, name + ".partial")
        shutil.rmtree(partial, ignore_errors=True)
        os.makedirs(partial)
        self.model.save_weights(os.path.join(partial, "model.weights.h5"))
        arrays, objects = {}, {}
        for object_name, source in self._objects().items():
            values = {}
            for key, value in source.get_state().items():
                if isinstance(value, np.ndarray):
                    arrays[f"{object_name}/{key}"] = value
                else:
                    values[key] = value
            objects[object_name] = values
        np.savez(os.path.join(partial, "state.npz"), **arrays)
        state = {
            "epoch": epoch,
            "history": self.history,
            "training_seconds": self.training_seconds,
            "objects": objects,
            "run_config": self.run_config,
            "model_class": type(self.model).__name__,
            "backend": keras.backend.backend(),
        }
        with open(os.path.join(partial, "state.json"), "w") as f:
            json.dump(state, f)
        final = os.path.join(self.directory, name)
        shutil.rmtree(final, ignore_errors=True)
        os.replace(partial, final)
        pointer = os.path.join(self.directory, POINTER)
        with open(pointer + ".tmp", "w") as f:
            json.dump({"folder": name, "epoch": epoch}, f)
            f.flush()
            os.fsync(f.fileno())
        os.replace(pointer + ".tmp", pointer)
        for entry in os.listdir(self.directory):
            if entry.startswith("epoch_") and entry != name:
                shutil.rmtree(os.path.join(self.directory, entry), ignore_errors=True)
        return final
