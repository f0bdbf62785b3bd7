"""`model.save(".keras")` and `keras_sanm.load_model`: every method and backbone, and across backends."""

import os
import subprocess
import sys

import keras
import numpy as np
import pytest

import keras_sanm
from keras_sanm import methods
from keras_sanm.training.seed_state import seed_generators

from conftest import learnable_problem, small_cnn, small_data_options

# method -> wrap options (the registry's for small data; DivideMix keeps a short loss history).
METHOD_OPTIONS = {name: small_data_options(name, 32, 8) for name in methods.names()}
METHOD_OPTIONS["dividemix"]["history_length"] = 2


def training_inputs(method):
    x, y = learnable_problem(n=32)
    # DivideMix's SANM views and SSR's strong views (AutoAugment, RandAugment) are 8-bit
    # operations: they refuse standardised floats such as these.
    if method in ("dividemix", "ssr"):
        x = np.clip(x * 40 + 128, 0, 255).astype("uint8")
    batch_size = None if methods.get(method).batch_size_option else 8
    return x, y, batch_size


def state(model):
    """Every variable (weights, per-sample state, optimizer slots) and random-seed state."""
    variables = model.variables + model.optimizer.variables
    return [keras.ops.convert_to_numpy(v) for v in variables] + [
        keras.ops.convert_to_numpy(g.state) for g in seed_generators(model)]


def assert_same_state(a, b):
    a, b = state(a), state(b)
    assert len(a) == len(b)
    for x, y in zip(a, b):
        np.testing.assert_array_equal(x, y)


@pytest.mark.slow
@pytest.mark.parametrize("sanm", [False, True], ids=["plain", "sanm"])
@pytest.mark.parametrize("method", sorted(METHOD_OPTIONS))
def test_save_load_round_trip_and_training_continues_identically(tmp_path, method, sanm):
    x, y, batch_size = training_inputs(method)
    model = keras_sanm.wrap(small_cnn(), method=method, sanm=sanm, seed=0,
                            **METHOD_OPTIONS[method])
    model.compile()  # reference optimizer, schedule and weight decay
    model.fit(x, y, batch_size=batch_size, epochs=1, verbose=0)
    path = str(tmp_path / "model.keras")
    model.save(path)
    loaded = keras_sanm.load_model(path)

    assert type(loaded) is type(model)
    def options(m):
        return {k: v for k, v in m.get_config().items() if k not in ("network", "networks")}
    assert options(loaded) == options(model)
    np.testing.assert_array_equal(loaded.predict(x, verbose=0), model.predict(x, verbose=0))
    assert_same_state(loaded, model)
    assert loaded.l2_weight_decay == model.l2_weight_decay > 0 or method == "coteaching"
    assert type(loaded._lr_schedule) is type(model._lr_schedule)
    if not sanm:
        return  # (the SANM variant adds masks and decoders to the same method state)
    # Optimizer slots, per-sample state and random-seed states all came back:
    # one more epoch on each gives the same weights, bit for bit.
    for m in (model, loaded):
        m.fit(x, y, batch_size=batch_size, epochs=2, initial_epoch=1, verbose=0)
    assert_same_state(loaded, model)


@pytest.mark.slow
@pytest.mark.parametrize("backbone", ["preact_resnet18", "cnn9", "small_cnn"])
def test_every_backbone_round_trips(tmp_path, backbone):
    x = np.random.default_rng(0).normal(size=(4, 32, 32, 3)).astype("float32")
    base = keras_sanm.backbones.get(backbone, 10, (32, 32, 3))
    model = keras_sanm.wrap(base, seed=0)
    model.compile(optimizer=keras.optimizers.SGD(0.01, momentum=0.9), weight_decay=1e-4)
    model.optimizer.build(model.trainable_variables)
    path = str(tmp_path / "model.keras")
    model.save(path)
    loaded = keras_sanm.load_model(path)
    np.testing.assert_array_equal(loaded.predict(x, verbose=0), model.predict(x, verbose=0))
    assert loaded.l2_weight_decay == 1e-4 and loaded._lr_schedule is None
    assert loaded.optimizer.get_config()["momentum"] == 0.9
    assert_same_state(loaded, model)


SAVE_ON_OTHER_BACKEND = """
import sys
import numpy as np
sys.path.insert(0, sys.argv[2])
import keras_sanm
from conftest import learnable_problem, small_cnn
x, y = learnable_problem(n=32)
for method, options in (("ce", {}), ("elr_plus", {"num_samples": 32, "batch_size": 8})):
    # CE on the package's PreAct ResNet-18, channels-first inside when saved on torch.
    base = (keras_sanm.backbones.PreActResNet18(4, (16, 16, 3), width=4) if method == "ce"
            else small_cnn())
    model = keras_sanm.wrap(base, method=method, seed=0, **options)
    model.compile()
    model.fit(x, y, batch_size=None if options else 8, epochs=1, verbose=0)
    model.save(f"{sys.argv[1]}/{method}.keras")
    np.save(f"{sys.argv[1]}/{method}.npy", model.predict(x, verbose=0))
"""


@pytest.mark.slow
def test_model_saved_on_another_backend_loads_and_trains(tmp_path):
    backends = ["jax", "tensorflow", "torch"]
    other = backends[(backends.index(keras.backend.backend()) + 1) % 3]
    env = dict(os.environ, KERAS_BACKEND=other)
    done = subprocess.run(
        [sys.executable, "-c", SAVE_ON_OTHER_BACKEND, str(tmp_path), os.path.dirname(__file__)],
        env=env, capture_output=True, text=True, timeout=600,
    )
    assert done.returncode == 0, done.stderr[-3000:]
    x, y = learnable_problem(n=32)
    for method in ("ce", "elr_plus"):
        model = keras_sanm.load_model(str(tmp_path / f"{method}.keras"))
        expected = np.load(tmp_path / f"{method}.npy")
        # Same weights; kernels differ across backends only in float rounding.
        np.testing.assert_allclose(model.predict(x, verbose=0), expected, rtol=1e-4, atol=1e-5)
        history = model.fit(x, y, batch_size=None if method == "elr_plus" else 8, epochs=1,
                            verbose=0).history
        assert np.isfinite(history["loss"][-1])


def test_load_model_names_a_missing_file(tmp_path):
    with pytest.raises(FileNotFoundError, match="No saved model"):
        keras_sanm.load_model(str(tmp_path / "missing.keras"))


@pytest.mark.slow
@pytest.mark.parametrize("imports", ["import keras_sanm, keras", "import keras, keras_sanm"])
def test_plain_keras_load_model_after_importing_the_package(tmp_path, imports):
    # A fresh process, either import order: keras.saving.load_model finds the trainers.
    x, y, batch_size = training_inputs("dividemix")
    # The package's own backbone: its batch-norm layer must be found by a fresh process too.
    base = keras_sanm.backbones.SmallCNN(num_classes=4, input_shape=x.shape[1:])
    model = keras_sanm.wrap(base, method="dividemix", **METHOD_OPTIONS["dividemix"])
    model.fit(x, y, batch_size=batch_size, epochs=1, verbose=0)
    path, images = tmp_path / "dividemix.keras", tmp_path / "x.npy"
    model.save(str(path))
    np.save(images, x)
    code = (f"{imports}\nimport numpy as np\n"
            f"model = keras.saving.load_model({str(path)!r})\n"
            f"np.save({str(tmp_path / 'p.npy')!r}, model.predict(np.load({str(images)!r}), verbose=0))\n"
            "print(type(model).__name__)")
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                          env=dict(os.environ, KERAS_BACKEND=keras.backend.backend()), timeout=300)
    assert done.returncode == 0, done.stderr[-2000:]
    assert done.stdout.split()[-1] == "SANMDivideMixTrainer"
    np.testing.assert_allclose(np.load(tmp_path / "p.npy"), model.predict(x, verbose=0),
                               rtol=1e-5, atol=1e-6)
