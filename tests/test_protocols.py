"""Training protocols (Clothing1M, Animal-10N): what they set, from Python and the command line."""

import dataclasses
import json

import keras
import numpy as np
import pytest

import keras_sanm
from keras_sanm import cli, protocols
from keras_sanm.training.optimizers import NetworkOptimizers

from conftest import CLI_ONLY, small_cnn


def test_the_protocols_state_the_papers_settings():
    clothing, animal = protocols.get("clothing1m"), protocols.get("animal10n")
    assert (clothing.backbone, clothing.batch_size, clothing.epochs, clothing.optimizer,
            clothing.learning_rate, clothing.lr_drop_epochs) == (
        "resnet50", 64, 80, "adam", 0.002, (40,))
    assert (animal.backbone, animal.batch_size, animal.epochs, animal.optimizer,
            animal.learning_rate, animal.lr_drop_epochs) == (
        "vgg19", 64, 150, "sgd", 0.02, (50, 100))
    assert protocols.get(animal) is animal
    with pytest.raises(ValueError, match="Unknown protocol 'cifar10-sym-0.5'"):
        protocols.get("cifar10-sym-0.5")  # a method preset is not a protocol


@pytest.mark.slow
@pytest.mark.only_backend("torch", reason="builds Keras layers only; what the protocol sets "
                          "is checked on every backend below")
def test_protocol_backbones_are_built_for_their_datasets():
    animal = protocols.get("animal10n").backbone_model()
    assert animal.name == "vgg19" and tuple(animal.input.shape) == (None, 64, 64, 3)
    assert animal.output.shape[-1] == 10
    clothing = protocols.get("clothing1m").backbone_model()
    assert clothing.name == "resnet50" and tuple(clothing.input.shape) == (None, 224, 224, 3)
    assert clothing.output.shape[-1] == 14


@pytest.mark.parametrize("method", ["ce", "dividemix"])
def test_compile_with_a_protocol_takes_its_optimizer_and_schedule(method, tmp_path):
    model = keras_sanm.wrap(small_cnn(), method=method, seed=0)
    model.compile(protocol="clothing1m")
    inner = model.optimizer.optimizers if isinstance(model.optimizer, NetworkOptimizers) else [
        model.optimizer]
    assert all(isinstance(o, keras.optimizers.Adam) for o in inner)
    assert model.l2_weight_decay == 0.0 and model.get_compile_config()["protocol"] == "clothing1m"
    model.compile(protocol="animal10n")
    inner = model.optimizer.optimizers if isinstance(model.optimizer, NetworkOptimizers) else [
        model.optimizer]
    assert all(isinstance(o, keras.optimizers.SGD) and float(o.momentum) == 0.9 for o in inner)
    assert model.l2_weight_decay == 5e-4
    # Saved with the model: a loaded model compiles with the same protocol.
    model.save(tmp_path / "m.keras")
    loaded = keras_sanm.load_model(str(tmp_path / "m.keras"))
    assert loaded.get_compile_config()["protocol"] == "animal10n"
    for bad in ({"optimizer": keras.optimizers.SGD(0.1)}, {"lr_drop_epochs": (5,)}):
        with pytest.raises(ValueError, match="sets the optimizer and its schedule"):
            model.compile(protocol="animal10n", **bad)


def test_a_protocols_drops_come_at_its_fixed_epochs():
    # Animal-10N's shape (two drops), shortened to 3 epochs: a drop at 1 and at 2.
    short = dataclasses.replace(protocols.get("animal10n"), lr_drop_epochs=(1, 2))
    model = keras_sanm.wrap(small_cnn(), method="ce", sanm=False, seed=0)
    model.compile(protocol=short)
    rng = np.random.default_rng(0)
    x, y = rng.random((32, 16, 16, 3)).astype("float32"), rng.integers(0, 4, 32)
    history = model.fit(x, y, batch_size=16, epochs=3, verbose=0).history
    np.testing.assert_allclose(history["learning_rate"], [0.02, 0.002, 0.0002], rtol=1e-6)


def test_wrap_with_a_protocol_takes_the_methods_own_settings_for_its_dataset():
    clothing = protocols.get("clothing1m")
    assert clothing.method_options("ssr") == {
        "relabel_threshold": 0.99, "alpha": 0.5, "class_prior": False}
    assert protocols.get("animal10n").method_options("ssr") == {
        "relabel_threshold": 0.95, "alpha": 0.5}
    assert clothing.method_options("dividemix") == {}  # its reference: the defaults
    base = keras_sanm.backbones.SmallCNN(4, input_shape=(16, 16, 3))
    model = keras_sanm.wrap(base, method="ssr", sanm=False, protocol="clothing1m")
    assert (model.relabel_threshold, model.alpha, model.class_prior) == (0.99, 0.5, False)
    # Explicit options win; the CIFAR defaults hold without a protocol.
    model = keras_sanm.wrap(base, method="ssr", sanm=False, protocol="animal10n",
                            relabel_threshold=0.9)
    assert (model.relabel_threshold, model.alpha, model.class_prior) == (0.9, 0.5, True)
    model = keras_sanm.wrap(base, method="ssr", sanm=False)
    assert (model.relabel_threshold, model.alpha, model.class_prior) == (0.9, 4.0, True)
    with pytest.raises(ValueError, match="give one"):
        keras_sanm.wrap(base, method="dividemix", preset="cifar10-sym-0.5", protocol="animal10n")
    with pytest.raises(ValueError, match="Unknown protocol"):
        keras_sanm.wrap(base, method="ssr", protocol="animal-10n")


@CLI_ONLY
def test_train_with_a_protocol_sets_its_backbone_batch_epochs_and_schedule(tmp_path):
    from test_cli_and_datasets import write_animal10n

    write_animal10n(tmp_path / "animal10n", 48, 16)
    with pytest.raises(SystemExit, match="--protocol animal10n is the protocol of --dataset "
                                         "animal10n, not of cifar10"):
        cli.main(["train", "--protocol", "animal10n", "--output", str(tmp_path / "x")])
    with pytest.raises(SystemExit, match="give one"):
        cli.main(["train", "--dataset", "animal10n", "--protocol", "animal10n",
                  "--preset", "cifar10-sym-0.5", "--output", str(tmp_path / "x")])
    with pytest.raises(SystemExit, match="leave out --lr-drop-epochs"):
        cli.main(["train", "--dataset", "animal10n", "--protocol", "animal10n",
                  "--lr-drop-epochs", "5", "--output", str(tmp_path / "x")])
    out = tmp_path / "run"
    # The protocol's backbone, batch and schedule, and SSR's own settings for the
    # dataset; epochs and width shortened for a CPU test.
    cli.main(["train", "--dataset", "animal10n", "--data-dir", str(tmp_path / "animal10n"),
              "--protocol", "animal10n", "--method", "ssr", "--width", "2", "--batch-size",
              "16", "--epochs", "1", "--no-sanm", "--output", str(out), "--verbose", "0"])
    summary = json.loads((out / "summary.json").read_text())
    assert summary["backbone"] == "vgg19" and summary["protocol"] == "animal10n"
    assert summary["learning_rates"] == [0.02]
    model = keras_sanm.load_model(str(out / "model.keras"))
    assert isinstance(model.optimizer, keras.optimizers.SGD) and model.l2_weight_decay == 5e-4
    assert (model.relabel_threshold, model.alpha) == (0.95, 0.5)
