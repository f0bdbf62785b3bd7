"""A non-finite loss stops training, names the step and the loss parts, and keeps the last good checkpoint."""

import os
import threading

import keras
import numpy as np
import pytest

import keras_sanm
from keras_sanm.training.backup import TrainingBackup
from keras_sanm.training.callbacks import NonFiniteLossError

from conftest import learnable_problem, small_cnn


class BreakAt(keras.callbacks.Callback):
    """Records the weights after each epoch; fills the last kernel with NaN before `epoch`."""

    def __init__(self, network, epoch):
        super().__init__()
        self.network, self.epoch, self.saved = network, epoch, {}

    def on_epoch_begin(self, epoch, logs=None):
        if epoch == self.epoch:
            kernel = self.network.get_layer("logits").kernel
            kernel.assign(np.full(kernel.shape, np.nan, "float32"))

    def on_epoch_end(self, epoch, logs=None):
        self.saved[epoch] = [keras.ops.convert_to_numpy(v) for v in self.model.weights]


@pytest.mark.parametrize("method,options,message", [
    ("ce", {}, "classification_loss.*reconstruction_loss"),  # Keras' fit loop, SANM parts
    ("dividemix", {"batch_size": 8, "warmup_epochs": 3}, "accuracy"),  # the own epoch loop
])
def test_nan_loss_stops_with_step_and_parts_and_keeps_the_good_checkpoint(
        tmp_path, method, options, message):
    x, y = learnable_problem(n=32)
    if method == "dividemix":
        x = np.clip(x * 40 + 128, 0, 255).astype("uint8")
    model = keras_sanm.wrap(small_cnn(), method=method, sanm=method == "ce", seed=0, **options)
    model.compile(optimizer=keras.optimizers.SGD(0.01))
    breaker = BreakAt(model.networks[0] if method == "dividemix" else model.network, epoch=1)
    backup = TrainingBackup(tmp_path)
    with pytest.raises(NonFiniteLossError, match=rf"epoch 1, batch 0 \(optimizer step \d+\)"
                                                 rf".*{message}") as error:
        model.fit(x, y, batch_size=None if method == "dividemix" else 8, epochs=3, verbose=0,
                  callbacks=[backup, breaker])
    assert "loss" in str(error.value) and "resume" in str(error.value)
    latest = TrainingBackup.latest(tmp_path)
    assert latest["epoch"] == 1  # the checkpoint after epoch 0, not overwritten
    assert sorted(os.listdir(tmp_path)) == ["epoch_00001", "latest.json"]
    restored = keras_sanm.wrap(small_cnn(), method=method, sanm=method == "ce", seed=0, **options)
    restored.compile(optimizer=keras.optimizers.SGD(0.01))
    restored.optimizer.build(restored.trainable_variables)
    restored.load_weights(os.path.join(latest["folder"], "model.weights.h5"))
    for got, want in zip(restored.weights, breaker.saved[0], strict=True):
        np.testing.assert_array_equal(keras.ops.convert_to_numpy(got), want)


def test_epoch_with_non_finite_weights_is_not_checkpointed(tmp_path):
    x, y = learnable_problem(n=32)
    model = keras_sanm.wrap(small_cnn(), sanm=False, seed=0)
    model.compile(optimizer=keras.optimizers.SGD(0.01))
    backup = TrainingBackup(tmp_path)
    backup.set_model(model)
    model.network.get_layer("logits").bias.assign(np.full((4,), np.inf, "float32"))
    with pytest.raises(NonFiniteLossError, match="hold NaN or Inf.*logits"):
        backup.on_epoch_end(0, {"loss": 1.0})
    assert TrainingBackup.latest(tmp_path) is None


class InfiniteRateFrom(keras.callbacks.Callback):
    """From epoch `epoch` on, an infinite learning rate: the epoch's first step
    still computes a finite loss, its update makes the weights non-finite, so
    the running loss turns non-finite at batch 1."""

    def __init__(self, epoch):
        super().__init__()
        self.epoch = epoch

    def on_epoch_begin(self, epoch, logs=None):
        if epoch >= self.epoch:
            self.model.optimizer.learning_rate.assign(np.inf)


class BatchEndThreads(keras.callbacks.Callback):
    """Records the thread each batch's logs are read on (async-safe, as the guard)."""

    async_safe = True

    def __init__(self):
        super().__init__()
        self.threads = set()

    def on_train_batch_end(self, batch, logs=None):
        self.threads.add(threading.get_ident())


def test_the_guard_reads_no_logs_on_the_training_thread_and_names_the_first_bad_batch():
    x, y = learnable_problem(n=64)
    model = keras_sanm.wrap(small_cnn(), sanm=False, seed=0)
    model.compile(optimizer=keras.optimizers.SGD(0.01))
    threads = BatchEndThreads()
    breaker = InfiniteRateFrom(epoch=1)
    # 8 batches per epoch: the loss breaks at epoch 1's second batch, optimizer step 8 + 1 + 1.
    with pytest.raises(NonFiniteLossError, match=r"epoch 1, batch 1 \(optimizer step 10\)"):
        model.fit(x, y, batch_size=8, epochs=3, verbose=0, callbacks=[threads, breaker])
    if keras.backend.backend() in ("jax", "torch"):
        # Keras dispatches batch-end callbacks to worker threads when all are
        # async-safe (the guard is): the training thread does not wait on the logs.
        assert threading.get_ident() not in threads.threads
    else:  # TensorFlow's Keras reads them on the training thread
        assert threads.threads == {threading.get_ident()}
