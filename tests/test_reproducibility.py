"""The same seed gives the same noisy labels on every backend and the same training curve on one."""

import json
import os
import subprocess
import sys

import keras
import numpy as np
import pytest

import keras_sanm

from conftest import learnable_problem, small_cnn, write_jpeg_npz


def write_noise_files(folder):
    """The whole path of a run: loading, seeded subset, noise, noise file."""
    import keras

    from keras_sanm import datasets
    from keras_sanm.data import noisy_labels_from_file

    data = datasets.load("cifar10", folder, train_size=64, test_size=8, seed=3)
    for mode, rate in (("sym", 0.5), ("asym", 0.4)):
        noisy_labels_from_file(f"{folder}/{keras.backend.backend()}_{mode}.json",
                               data.y_train, 10, mode=mode, rate=rate)


@pytest.mark.slow
@pytest.mark.only_backend("torch", reason="it runs the other two backends itself")
def test_same_noisy_labels_on_every_backend(tmp_path):
    write_jpeg_npz(tmp_path / "cifar10_jpeg.npz")
    backends = ("jax", "tensorflow", "torch")
    write_noise_files(str(tmp_path))
    for backend in set(backends) - {keras.backend.backend()}:
        script = (f"import sys; sys.path.insert(0, {os.path.dirname(__file__)!r}); "
                  "from test_reproducibility import write_noise_files; "
                  f"write_noise_files({str(tmp_path)!r})")
        done = subprocess.run([sys.executable, "-c", script],
                              env=dict(os.environ, KERAS_BACKEND=backend),
                              capture_output=True, text=True, timeout=300)
        assert done.returncode == 0, done.stderr[-2000:]
    for mode in ("sym", "asym"):
        files = [(tmp_path / f"{b}_{mode}.json").read_bytes() for b in backends]
        assert files[0] == files[1] == files[2]
        labels = np.array(json.loads(files[0]))
        clean = keras_sanm.datasets.load("cifar10", str(tmp_path), 64, 8, seed=3).y_train
        assert 0 < np.mean(labels != clean) < 0.6


def train_once(x, y, seed):
    keras.utils.set_random_seed(seed)
    model = keras_sanm.wrap(small_cnn(), seed=seed)
    model.compile()
    history = model.fit(x, y, batch_size=8, epochs=2, verbose=0).history
    return history, [keras.ops.convert_to_numpy(v) for v in model.weights]


def test_same_seed_gives_the_same_training_curve():
    x, y = learnable_problem(n=32)
    first, first_weights = train_once(x, y, seed=5)
    second, second_weights = train_once(x, y, seed=5)
    np.testing.assert_equal(first, second)  # every logged term of every epoch (NaN == NaN)
    for a, b in zip(first_weights, second_weights, strict=True):
        np.testing.assert_array_equal(a, b)
    other, _ = train_once(x, y, seed=6)
    assert other["loss"] != first["loss"]
