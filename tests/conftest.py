"""Shared fixtures: small models and data so each backend's run stays short."""

import atexit
import io
import os
import shutil
import tempfile

# JAX: a compilation cache for this session (and the CLI runs it starts), so the
# many identical small programs of the suite compile once. Removed at exit.
if "JAX_COMPILATION_CACHE_DIR" not in os.environ:
    _cache = tempfile.mkdtemp(prefix="keras_sanm_jax_cache_")
    atexit.register(shutil.rmtree, _cache, ignore_errors=True)
    os.environ.update(JAX_COMPILATION_CACHE_DIR=_cache,
                      JAX_PERSISTENT_CACHE_MIN_COMPILE_TIME_SECS="0",
                      JAX_PERSISTENT_CACHE_MIN_ENTRY_SIZE_BYTES="0")

# XLA (JAX, and TensorFlow's jit_compile) compiles the suite's many small
# programs with its backend optimisations off: they are compile-bound, and JAX
# runs the suite about 15% faster so (the numbers do not depend on it beyond
# the tests' tolerances). Subprocesses inherit it.
if "xla_backend_optimization_level" not in os.environ.get("XLA_FLAGS", ""):
    os.environ["XLA_FLAGS"] = (os.environ.get("XLA_FLAGS", "")
                               + " --xla_backend_optimization_level=0").strip()

import keras
import numpy as np
import pytest
from keras import layers
from PIL import Image


def small_data_options(name, samples, batch_size, noise_rate=0.2):
    """`wrap` options for a run of method `name` on `samples` images: the registry's
    small-data options, and its noise-rate option (Co-teaching's forget rate, CDR's
    noise rate) fixed at `noise_rate`, or estimated after one epoch (`None`)."""
    from keras_sanm import methods

    spec = methods.get(name)
    options = spec.options_for_small_data(samples, batch_size)
    if spec.noise_rate_option:
        options.update({spec.noise_rate_option: noise_rate} if noise_rate is not None
                       else {"estimate_after": 1})
    return options


def small_cnn(input_shape=(16, 16, 3), num_classes=4, name="small_cnn"):
    inputs = keras.Input(input_shape)
    x = layers.Conv2D(8, 3, padding="same", activation="relu", name="conv1")(inputs)
    x = layers.MaxPooling2D(name="pool1")(x)
    x = layers.Conv2D(16, 3, padding="same", name="conv2")(x)
    x = layers.BatchNormalization(name="bn2")(x)
    x = layers.ReLU(name="relu2")(x)
    x = layers.GlobalAveragePooling2D(name="gap")(x)
    return keras.Model(inputs, layers.Dense(num_classes, name="logits")(x), name=name)


def learnable_problem(n=256, size=16, num_classes=4, seed=0):
    """Noise images with a square at a random place; its colour gives the class."""
    rng = np.random.default_rng(seed)
    labels = rng.integers(0, num_classes, n)
    images = rng.normal(0, 0.3, (n, size, size, 3)).astype("float32")
    colours = np.array([[2, 0, 0], [0, 2, 0], [0, 0, 2], [-2, -2, -2]], "float32")
    side = size // 2
    for i, c in enumerate(labels):
        r, col = rng.integers(0, size - side + 1, 2)
        images[i, r : r + side, col : col + side, :] += colours[c % 4]
    return images, labels


@pytest.fixture
def problem():
    return learnable_problem()


# The benchmark harness's tables, resume and merging: checked on one backend;
# the training it drives is tested on every backend.
HARNESS_ONLY = pytest.mark.only_backend(
    "tensorflow", reason="the benchmark harness's bookkeeping; the training it drives "
    "is tested on every backend")

# The command line's own logic (arguments, files, summaries, resume) beyond one
# run per backend (test_train_command_one_tiny_epoch): checked on one backend; the
# training under it is tested on every backend.
CLI_ONLY = pytest.mark.only_backend(
    "tensorflow", reason="the command line's own logic; the training under it is tested "
    "on every backend")

# Data-side equalities (the same images as files, a dataset or an array give the
# same batches, hence the same model): the data side does not depend on the
# backend, so they run once; every backend trains on every input kind in
# tests/test_contract_matrix.py.
DATA_SIDE_ONLY = pytest.mark.only_backend(
    "tensorflow", reason="the data side gives the same batches on every backend; every "
    "backend trains on every input kind in test_contract_matrix.py")


def pytest_runtest_setup(item):
    """`@pytest.mark.only_backend(name, ..., reason)`: a check whose subject does not
    depend on the backend (e.g. the benchmark harness's tables and resume,
    around training that other tests cover per backend) runs once, not three
    times; or one that some backend cannot run."""
    marker = item.get_closest_marker("only_backend")
    if marker is not None and keras.backend.backend() not in marker.args:
        pytest.skip(f"runs on {', '.join(marker.args)} only: {marker.kwargs['reason']}")


@pytest.fixture(autouse=True)
def _seed():
    keras.utils.set_random_seed(0)
    yield


def write_jpeg_npz(path, n_train=96, n_test=40, seed=0):
    """A tiny file in the ../shared/data/cifar10 format (JPEG bytes + offsets)."""
    rng = np.random.default_rng(seed)
    arrays = {}
    for split, n in (("train", n_train), ("test", n_test)):
        labels = rng.integers(0, 10, n).astype(np.uint8)
        blobs = []
        for c in labels:
            img = rng.integers(0, 60, (32, 32, 3)).astype(np.uint8)
            img[8:24, 8:24, c % 3] = 200 + 5 * (c // 3)
            buf = io.BytesIO()
            Image.fromarray(img).save(buf, format="JPEG", quality=90)
            blobs.append(np.frombuffer(buf.getvalue(), np.uint8))
        arrays[f"{split}_jpeg"] = np.concatenate(blobs)
        arrays[f"{split}_offsets"] = np.concatenate([[0], np.cumsum([len(b) for b in blobs])])
        arrays[f"y_{split}"] = labels
    np.savez(path, **arrays)
    return arrays


def write_animal10n(root, n_train=32, n_test=8, seed=0):
    """A tiny ANIMAL-10N in its published layout: training/ and testing/ of 64x64
    `<label>_<number>.jpg` (labels 0-7 of the 10). Returns the generator's
    classes (0-3); image `i`'s label is `2 * classes[i] + i % 2`."""
    images, classes = learnable_problem(n_train + n_test, size=16, seed=seed)
    images = np.clip((images + 3.0) / 6.0 * 255.0, 0, 255).astype("uint8")
    big = np.repeat(np.repeat(images, 4, axis=1), 4, axis=2)
    for split, part in (("training", range(n_train)),
                        ("testing", range(n_train, n_train + n_test))):
        os.makedirs(os.path.join(root, split), exist_ok=True)
        for i in part:
            label = 2 * int(classes[i]) + i % 2
            Image.fromarray(big[i]).save(os.path.join(root, split, f"{label}_{i:05d}.jpg"))
    return classes


def scale_pictures(n_train=128, n_test=64, noise=0.3, size=16, seed=0):
    """The same pictures in the four input scales, with noisy and true labels.

    `learnable_problem`'s pictures as uint8 pixels (its dark class is black
    in every channel), then the same pixels as floats in [0, 1], as floats in
    [0, 255], and standardised per channel by hand with the training images'
    mean and std (negative values), as a user would hold them.

    Returns:
        `({"uint8", "unit", "float255", "standardised"} -> (n_train + n_test,
        size, size, 3) images, noisy labels, true labels)`; a share `noise`
        of the labels is changed to another class.
    """
    from keras_sanm.data import inject_noise

    images, labels = learnable_problem(n_train + n_test, size=size, seed=seed)
    pixels = np.clip((images + 2.0) / 4.0 * 255.0, 0, 255).round().astype("uint8")
    unit = pixels.astype("float32") / 255.0
    train = unit[:n_train].reshape(-1, 3)
    mean, std = train.mean(0), train.std(0)
    scales = {"uint8": pixels, "unit": unit, "float255": pixels.astype("float32"),
              "standardised": (unit - mean) / std}
    noisy = inject_noise(labels, 4, "sym", noise, seed=seed, include_true_class=False)
    return scales, noisy, labels
