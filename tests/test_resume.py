"""Kill-and-resume: a `keras-sanm train --resume` run killed mid-way ends as an uninterrupted one."""

import json
import os
import signal
import subprocess
import sys

import keras
import numpy as np
import pytest

import keras_sanm
from keras_sanm import cli

from conftest import write_jpeg_npz

pytestmark = pytest.mark.slow  # end-to-end: `pytest -m "not slow"` skips them

# Kills the process (SIGKILL, no clean-up) at a chosen moment, then runs the CLI.
KILLER = """
import os, signal, sys
import keras_sanm.data.indexed_dataset as indexed, keras_sanm.training.callbacks as callbacks
from keras_sanm import cli
kind, when = sys.argv[1], int(sys.argv[2])
if kind == "batch":  # inside an epoch: when the training data builds batch number `when`
    original, calls = indexed.IndexedDataset.batch_at, [0]
    def batch_at(self, indices):
        calls[0] += 1
        if calls[0] == when:
            os.kill(os.getpid(), signal.SIGKILL)
        return original(self, indices)
    indexed.IndexedDataset.batch_at = batch_at
elif kind == "split":  # right after DivideMix's GMM split of epoch `when`
    original = callbacks.CoDivide.on_epoch_begin
    def on_epoch_begin(self, epoch, logs=None):
        original(self, epoch, logs)
        if epoch == when:
            os.kill(os.getpid(), signal.SIGKILL)
    callbacks.CoDivide.on_epoch_begin = on_epoch_begin
elif kind == "select":  # right after SSR's selection of epoch `when`
    from keras_sanm.methods.ssr.selection import SSRSelection
    original_select = SSRSelection.on_epoch_begin
    def select(self, epoch, logs=None):
        original_select(self, epoch, logs)
        if epoch == when:
            os.kill(os.getpid(), signal.SIGKILL)
    SSRSelection.on_epoch_begin = select
sys.exit(cli.main(sys.argv[3:]))
"""


def train(args, kill=("none", 0)):
    """`keras-sanm train ARGS` in a subprocess, killed as `kill` says."""
    # (conftest's JAX compilation cache lets the runs of a case compile once.)
    env = dict(os.environ, KERAS_BACKEND=keras.backend.backend())
    return subprocess.run(
        [sys.executable, "-c", KILLER, kill[0], str(kill[1]), "train", *args],
        env=env, capture_output=True, text=True, timeout=600,
    )


def saved_state(run_dir):
    model = keras_sanm.load_model(str(run_dir / "model.keras"))
    return [keras.ops.convert_to_numpy(v) for v in model.variables + model.optimizer.variables]


CASES = {
    # SANM(CE) through Keras' fit: killed at its 7th batch, i.e. inside epoch 1 (4 per epoch).
    "ce": (["--method", "ce", "--batch-size", "16"], ("batch", 7), 1),
    # DivideMix, own epoch loop: killed right after the co-divide of epoch 2. (SANM's
    # extra state, masks' seeds and decoders, is covered by the SANM(CE) case.)
    "dividemix": (["--method", "dividemix", "--no-sanm", "--batch-size", "8",
                   "--warmup-epochs", "1"],
                  ("split", 2), 2),
    # SSR, through Keras' fit with its own data: killed right after the selection
    # of epoch 2 (the selection and the data's plan are resumed state).
    "ssr": (["--method", "ssr", "--no-sanm", "--batch-size", "16"], ("select", 2), 2),
}
# The SANM(CE) case runs on every backend: it restores every kind of variable a
# backend holds (model, decoder, optimizer, seed generators). The epoch-loop
# and data bookkeeping of DivideMix and SSR does not depend on the backend:
# each runs on one.
ONE_BACKEND = {
    "dividemix": pytest.mark.only_backend(
        "tensorflow", reason="DivideMix's resumed loop and division are backend-independent; "
        "the variables restored per backend are covered by the SANM(CE) case"),
    "ssr": pytest.mark.only_backend(
        "jax", reason="SSR's resumed selection and data plan are backend-independent; the "
        "variables restored per backend are covered by the SANM(CE) case"),
}


@pytest.mark.parametrize("method", [pytest.param(m, marks=ONE_BACKEND.get(m, ()))
                                    for m in sorted(CASES)])
def test_killed_run_resumes_to_the_uninterrupted_result(tmp_path, method):
    write_jpeg_npz(tmp_path / "cifar10_jpeg.npz", n_train=64, n_test=16)
    extra, kill, checkpointed = CASES[method]
    common = ["--data-dir", str(tmp_path), "--noise", "sym:0.5", "--backbone", "small_cnn",
              "--epochs", "3", "--seed", "3", "--verbose", "0", "--resume", *extra]
    whole, broken = tmp_path / "whole", tmp_path / "broken"
    assert cli.main(["train", *common, "--output", str(whole)]) == 0  # in-process: uninterrupted

    killed = train([*common, "--output", str(broken)], kill=kill)
    assert killed.returncode == -signal.SIGKILL, killed.stderr[-3000:]
    assert not (broken / "summary.json").exists()
    pointer = json.loads((broken / "checkpoint" / "latest.json").read_text())
    assert pointer["epoch"] == checkpointed
    # The checkpoint records the time in fit so far; stand in for a long run
    # (SANM(CE) case) or for a checkpoint written before the time was recorded.
    state_file = broken / "checkpoint" / pointer["folder"] / "state.json"
    state = json.loads(state_file.read_text())
    assert state["training_seconds"] > 0
    if method == "ce":
        state["training_seconds"] = 5000.0
    else:
        del state["training_seconds"]
    state_file.write_text(json.dumps(state))

    with pytest.raises(SystemExit, match="--resume to continue it"):  # never overwritten
        cli.main(["train", *[a for a in common if a != "--resume"], "--output", str(broken)])

    resumed = train([*common, "--output", str(broken)])
    assert resumed.returncode == 0, resumed.stderr[-3000:]
    assert f"resuming from the checkpoint after epoch {checkpointed}" in resumed.stdout

    # Same per-epoch logs (test accuracy, losses, splits), bit for bit, and same final state.
    np.testing.assert_equal(json.loads((broken / "history.json").read_text()),
                            json.loads((whole / "history.json").read_text()))
    assert (broken / "log.csv").read_text() == (whole / "log.csv").read_text()
    for a, b in zip(saved_state(broken), saved_state(whole), strict=True):
        np.testing.assert_array_equal(a, b)
    summary = json.loads((broken / "summary.json").read_text())
    assert summary["resumed_from_epoch"] == checkpointed
    # The run's time counts the epochs before the kill too (this process took
    # far less than 5000 s), and the speed is every epoch's images over it;
    # unknown, it is reported as unknown.
    if method == "ce":
        assert 5000.0 < summary["wall_seconds"] < 5000.0 + 600
        assert summary["train_samples_per_second"] == pytest.approx(
            3 * summary["train_size"] / summary["wall_seconds"])
    else:
        assert summary["wall_seconds"] is None and summary["train_samples_per_second"] is None
        assert "time not recorded by the checkpoint" in resumed.stdout
    noise_files = [f for f in os.listdir(broken) if f.endswith("_sym.json")]
    assert len(noise_files) == 1  # the noise file sits beside the log
