"""`masked_targets`: refined by default for every SANM version whose copies start from the label.

CE, CDR, Co-teaching and ELR+ train their masked copies on the given label
unless refined; DivideMix and SSR bring their own refined targets and take
no option. Each check reads the targets that reach `masked_copies` in the
method's own step, so a method that stopped passing the refined targets
fails here.
"""

import json
import zipfile

import keras
import numpy as np
import pytest

import keras_sanm
from keras_sanm import methods
from keras_sanm.training.phases import Phase
from keras_sanm.training.refinement import co_refine

from conftest import CLI_ONLY, HARNESS_ONLY, learnable_problem, small_cnn

TAKES_TARGETS = ("ce", "cdr", "coteaching", "elr_plus")
OWN_TARGETS = ("dividemix", "ssr")


def test_the_registry_says_which_methods_take_masked_targets():
    assert {m for m in methods.names() if methods.get(m).masked_targets} == set(TAKES_TARGETS)
    assert set(methods.names()) == set(TAKES_TARGETS) | set(OWN_TARGETS)


@pytest.mark.parametrize("method", TAKES_TARGETS)
def test_refined_is_the_default_and_label_stays_an_option(method):
    default = keras_sanm.wrap(small_cnn(), method=method, seed=0)
    assert default.masked_targets == "refined"
    assert default.get_config()["masked_targets"] == "refined"
    label = keras_sanm.wrap(small_cnn(), method=method, seed=0, masked_targets="label")
    assert label.get_config()["masked_targets"] == "label"
    with pytest.raises(ValueError, match="masked_targets must be one of"):
        keras_sanm.wrap(small_cnn(), method=method, masked_targets="prediction")


@pytest.mark.parametrize("method", OWN_TARGETS)
def test_methods_with_their_own_refined_targets_refuse_the_option(method):
    with pytest.raises(ValueError, match="has no masked_targets option"):
        keras_sanm.wrap(small_cnn(), method=method, masked_targets="label")
    assert "masked_targets" not in keras_sanm.wrap(small_cnn(), method=method).get_config()


def _targets_reaching_the_copies(model, method, images, labels, quality):
    """The targets the method's step hands to `masked_copies`, and the network's clean scores."""
    seen = {}
    original = model.masked_copies

    def spy(images_, features, quality_, targets):
        seen.setdefault("targets", keras.ops.convert_to_numpy(targets))
        return original(images_, features, quality_, targets)

    model.masked_copies = spy
    x = keras.ops.convert_to_tensor(images)
    y = keras.ops.convert_to_tensor(labels)
    w = keras.ops.convert_to_tensor(quality)
    one_hot = keras.ops.one_hot(y, 4)
    if method == "elr_plus":
        model.sanm_pool(0, {"images": x, "quality": keras.ops.stack([w, w], 1)}, one_hot)
    elif method == "coteaching":
        model.compute_train_loss((x, y, keras.ops.stack([w, w], 1)), Phase("train", 0))
    else:
        model.compute_train_loss((x, y, w), Phase("train", 0))
    scores = model.network_list()[0](x, training=True)[1]
    return seen["targets"], keras.ops.convert_to_numpy(one_hot), scores


@pytest.mark.parametrize("method", TAKES_TARGETS)
def test_the_step_trains_the_copies_on_the_refined_label(method):
    images, labels = learnable_problem(n=16)
    wrong = (labels + 1) % 4
    quality = np.linspace(0.0, 1.0, 16).astype("float32")
    refined = keras_sanm.wrap(small_cnn(), method=method, seed=0)
    targets, one_hot, scores = _targets_reaching_the_copies(
        refined, method, images, wrong, quality)
    probabilities = keras.ops.softmax(scores, axis=-1)
    expected = keras.ops.convert_to_numpy(co_refine(probabilities, one_hot, quality, 0.5))
    # Training-mode passes (batch statistics) agree to float tolerance.
    np.testing.assert_allclose(targets, expected, atol=2e-3)
    np.testing.assert_allclose(targets[-1], one_hot[-1], atol=1e-6)  # trusted: the label
    assert np.abs(targets[0] - one_hot[0]).max() > 0.1  # doubted: not the label
    label = keras_sanm.wrap(small_cnn(), method=method, seed=0, masked_targets="label")
    targets, one_hot, _ = _targets_reaching_the_copies(label, method, images, wrong, quality)
    np.testing.assert_array_equal(targets, one_hot)


def _without_masked_targets(path, out):
    """A copy of a saved model whose config has no `masked_targets` (as saved before the option)."""
    with zipfile.ZipFile(path) as source, zipfile.ZipFile(out, "w") as target:
        for item in source.infolist():
            data = source.read(item.filename)
            if item.filename == "config.json":
                config = json.loads(data)
                assert config["config"].pop("masked_targets") == "refined"
                data = json.dumps(config).encode()
            target.writestr(item, data)


@pytest.mark.parametrize("method", ("ce", "coteaching"))
def test_models_saved_before_the_option_load_with_the_label_targets(method, tmp_path):
    model = keras_sanm.wrap(small_cnn(), method=method, seed=0)
    model.save(tmp_path / "new.keras")
    assert keras_sanm.load_model(str(tmp_path / "new.keras")).masked_targets == "refined"
    _without_masked_targets(tmp_path / "new.keras", tmp_path / "old.keras")
    assert keras_sanm.load_model(str(tmp_path / "old.keras")).masked_targets == "label"
    explicit = keras_sanm.wrap(small_cnn(), method=method, seed=0, masked_targets="label")
    explicit.save(tmp_path / "label.keras")
    assert keras_sanm.load_model(str(tmp_path / "label.keras")).masked_targets == "label"


@CLI_ONLY
def test_a_resumed_run_keeps_the_targets_it_started_with():
    import argparse

    from keras_sanm import cli
    from keras_sanm.cli import train as train_command

    def args(method="ce", sanm=True, masked_targets=None):
        namespace = argparse.Namespace(**dict.fromkeys(cli.RUN_SETTINGS), noise=None)
        namespace.method, namespace.sanm, namespace.masked_targets = method, sanm, masked_targets
        return namespace

    # New runs record the targets they train with, the default included.
    assert train_command._run_config(args(), [0])["masked_targets"] == "refined"
    assert train_command._run_config(args(masked_targets="label"), [0])["masked_targets"] == "label"
    assert train_command._run_config(args(sanm=False), [0])["masked_targets"] is None
    assert train_command._run_config(args("dividemix"), [0])["masked_targets"] is None
    # A run checkpointed while the label was the default recorded none: it
    # continues on the label, under the settings it recorded.
    old = {"run_config": {"masked_targets": None}}
    assert train_command._resumes_label_targets_by_default(args(), old)
    assert train_command._run_config(args(masked_targets="label"), [0], True)["masked_targets"] is None
    for later in (args(sanm=False), args("dividemix"), args(masked_targets="refined")):
        assert not train_command._resumes_label_targets_by_default(later, old)
    assert not train_command._resumes_label_targets_by_default(args(), {"run_config": {
        "masked_targets": "refined"}})


@HARNESS_ONLY
def test_the_grid_refuses_a_default_cell_folder_run_on_the_label(tmp_path):
    from benchmarks.harness import accuracy

    budget = accuracy.BUDGETS["smoke"]
    cell = accuracy.Cell("ce", True, "sym:0.5", 0)
    run_dir = tmp_path / cell.name
    run_dir.mkdir()
    summary = {"best_test_accuracy": 0.5, "last_test_accuracy": 0.4,
               "mean_last10_test_accuracy": 0.4, "wall_seconds": 1.0,
               "train_samples_per_second": 1.0, "actual_noise_rate": 0.5, "epochs": 2,
               "backend": "jax", "backbone": "small_cnn", "train_size": 96}
    (run_dir / "history.json").write_text(json.dumps({"val_accuracy": [0.5, 0.4]}))
    # Finished before the refined default: its summary names no targets.
    (run_dir / "summary.json").write_text(json.dumps({**summary, "masked_targets": None}))
    with pytest.raises(RuntimeError, match="ce_sanm_label-targets_sym0.5_s0"):
        accuracy.run_cell(budget, cell, str(tmp_path), str(tmp_path))
    label_cell = accuracy.Cell("ce", True, "sym:0.5", 0, masked_targets="label")
    (tmp_path / label_cell.name).mkdir()
    for name in ("history.json", "summary.json"):
        (tmp_path / label_cell.name / name).write_text((run_dir / name).read_text())
    assert accuracy.run_cell(budget, label_cell, str(tmp_path), str(tmp_path))[
        "masked_targets"] == "label"
    (run_dir / "summary.json").write_text(json.dumps({**summary, "masked_targets": "refined"}))
    assert accuracy.run_cell(budget, cell, str(tmp_path), str(tmp_path))[
        "masked_targets"] == "refined"
