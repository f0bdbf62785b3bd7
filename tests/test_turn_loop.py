"""The epoch loop of methods whose networks take turns, and their per-phase steps."""

import keras
import numpy as np
import pytest

import keras_sanm
from keras_sanm.data import IndexedDataset
from keras_sanm.methods.elr_plus.trainers import exponential_rampup
from keras_sanm.training.phases import Phase
from keras_sanm.training.turn_loop import fit_in_turns, resume_epoch

from conftest import learnable_problem, small_cnn


def plain_model():
    model = keras.Sequential([keras.Input((2,)), keras.layers.Dense(1)])
    model.compile(optimizer="sgd", loss="mse")
    return model


class Recorder(keras.callbacks.Callback):
    def __init__(self, restore=None, stop_at=None):
        super().__init__()
        self.restore, self.stop_at = restore, stop_at
        self.restored_epoch, self.events = None, []

    def on_train_begin(self, logs=None):
        self.restored_epoch = self.restore

    def on_epoch_begin(self, epoch, logs=None):
        self.events.append(("epoch", epoch, self.params["steps"]))

    def on_train_batch_end(self, batch, logs=None):
        self.events.append(("step", batch, logs["loss"]))
        if self.stop_at == len([e for e in self.events if e[0] == "step"]):
            self.model.stop_training = True


def run(recorder, epochs=3, initial_epoch=0):
    calls = []

    def plan(epoch):
        # Network 1 takes epoch + 1 steps, network 2 two: the count changes every epoch.
        return [(Phase("train", 0), list(range(epoch + 1)), lambda s: ("a", s)),
                (Phase("train", 1), [10, 11], lambda s: ("b", s))]

    def step(phase, batch):
        calls.append((phase, batch))
        return {"loss": float(len(calls))}

    history = fit_in_turns(plain_model(), plan, step, lambda: {"loss": -1.0}, epochs,
                           callbacks=[recorder], verbose=0, initial_epoch=initial_epoch)
    return calls, history


def test_each_epoch_runs_its_plan_in_order_with_its_own_step_count():
    recorder = Recorder()
    calls, history = run(recorder)
    assert calls[:5] == [(Phase("train", 0), ("a", 0)), (Phase("train", 1), ("b", 10)),
                         (Phase("train", 1), ("b", 11)), (Phase("train", 0), ("a", 0)),
                         (Phase("train", 0), ("a", 1))]
    assert len(calls) == 3 + 4 + 5
    assert [e for e in recorder.events if e[0] == "epoch"] == [
        ("epoch", 0, 3), ("epoch", 1, 4), ("epoch", 2, 5)]
    assert history.history["loss"] == [-1.0, -1.0, -1.0]


def test_a_restored_epoch_is_where_the_loop_starts():
    recorder = Recorder(restore=2)
    calls, history = run(recorder, epochs=3)
    assert len(calls) == 5 and history.epoch == [2]
    assert resume_epoch([Recorder()], 1) == 1


def test_a_callback_stops_training_mid_epoch():
    recorder = Recorder(stop_at=4)
    calls, history = run(recorder)
    assert len(calls) == 4 and history.epoch == [0, 1]


def test_elr_plus_epoch_logs_are_means_over_the_epoch_not_its_last_step():
    # 64 samples in batches of 16: four steps per network per epoch. The ELR
    # weight of network k's j-th step is rampup(j) * lambda: known in advance.
    x, y = learnable_problem(n=64, seed=0)
    model = keras_sanm.wrap(small_cnn(), method="elr_plus", sanm=False, num_samples=64,
                            seed=0, coef_step=16, lambda_elr=3.0)
    history = model.fit(x, y, batch_size=16, epochs=2, verbose=0).history
    ramp = keras.ops.convert_to_numpy(exponential_rampup(np.arange(1, 9), 16)) * 3.0
    for epoch, steps in ((0, ramp[:4]), (1, ramp[4:])):
        assert history["elr_weight"][epoch] == pytest.approx(float(steps.mean()), rel=1e-5)
        assert history["elr_weight"][epoch] != pytest.approx(float(steps[-1]), rel=1e-3)


def test_a_phase_outside_the_methods_is_refused():
    x, y = learnable_problem(n=32, seed=0)
    model = keras_sanm.wrap(small_cnn(), method="elr_plus", sanm=False, num_samples=32, seed=0)
    data = model.training_data(IndexedDataset(x, y, 16, augment=None), None)
    batch = model.make_batch(data, np.arange(16))
    with pytest.raises(ValueError, match="Unknown phase"):
        model.train_phase_on_batch(("warmup", 0), batch)
    with pytest.raises(ValueError, match="Unknown phase"):
        model.train_phase_on_batch(("train", 2), batch)
    logs = model.train_phase_on_batch(("train", 1), batch)
    assert model.phase == Phase("train", 1) and isinstance(logs["loss"], float)
