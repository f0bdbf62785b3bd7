"""SANM(DivideMix)'s warm-up augmentation as an experiment arm (`warmup_augment`)."""

import json
import os
import zipfile

import keras
import pytest

import keras_sanm
from benchmarks.harness.accuracy import BUDGETS, Cell, grid, markdown, train_arguments
from keras_sanm import cli
from keras_sanm.data.strong_augment import autoaugment_view, warmup_view
from keras_sanm.methods import dividemix

from conftest import HARNESS_ONLY, small_cnn


def sanm_dividemix(**options):
    return keras_sanm.wrap(small_cnn(), method="dividemix", **options)


@pytest.mark.parametrize("arm,view,clip", [(None, warmup_view, 1.0),
                                           ("strong_warmup", warmup_view, 1.0),
                                           ("autoaugment", autoaugment_view, None),
                                           ("weak", None, None)])
def test_each_arm_sets_the_warmup_views_and_clip(arm, view, clip, problem):
    model = sanm_dividemix(**({} if arm is None else {"warmup_augment": arm}))
    assert model.warmup_augment == (arm or "strong_warmup")
    assert model.warmup_clip_norm == clip
    x, y = problem
    data = dividemix.training_data(model, (x * 40 + 120).clip(0, 255).astype("uint8"), y, 16,
                                   4, 0, None)
    if view is not None:
        assert data._warmup_fn is view
    else:
        assert data._warmup_fn.__name__ == "weak_augment"


def test_arm_options_are_checked_and_saved(tmp_path):
    with pytest.raises(ValueError, match="warmup_augment must be one of"):
        sanm_dividemix(warmup_augment="randaugment")
    with pytest.raises(ValueError, match="strong_warmup=False is DivideMix's weak warm-up"):
        sanm_dividemix(strong_warmup=False, warmup_augment="autoaugment")
    assert sanm_dividemix(strong_warmup=False).warmup_augment == "weak"
    model = sanm_dividemix(warmup_augment="autoaugment")
    path = os.fspath(tmp_path / "m.keras")
    model.save(path)
    assert keras_sanm.load_model(path).warmup_augment == "autoaugment"
    # A model saved before the option loads with the warm-up its flag says.
    old = os.fspath(tmp_path / "old.keras")
    with zipfile.ZipFile(path) as src, zipfile.ZipFile(old, "w") as dst:
        for item in src.infolist():
            data = src.read(item.filename)
            if item.filename == "config.json":
                config = json.loads(data)
                config["config"].pop("warmup_augment")
                data = json.dumps(config).encode()
            dst.writestr(item, data)
    assert keras_sanm.load_model(old).warmup_augment == "strong_warmup"
    keras.backend.clear_session()


@HARNESS_ONLY
def test_the_harness_runs_warmup_arms_as_their_own_cells():
    budget = BUDGETS["cpu-regime"]
    cells = grid(budget, ["ce", "dividemix"], warmups=["autoaugment", "weak"])
    arms = [c for c in cells if c.warmup]
    assert {c.method for c in arms} == {"dividemix"} and all(c.sanm for c in arms)
    assert len(arms) == 2 * len(budget.noises) * len(budget.seeds)
    cell = Cell("dividemix", True, "sym:0.5", 0, warmup="autoaugment", start="simclr")
    assert cell.name == "dividemix_sanm_autoaugment-warmup_simclr-start_sym0.5_s0"
    args = train_arguments(budget, cell, "d", "o", init="p{seed}")
    assert args[args.index("--warmup-augment") + 1] == "autoaugment"
    with pytest.raises(ValueError, match="warm-ups"):
        grid(budget, ["dividemix"], warmups=["strong_warmup"])
    row = {"method": "dividemix", "sanm": True, "warmup": "autoaugment", "start": "",
           "noise": "sym:0.5", "seed": 0, "best": 0.4, "last": 0.4, "last10": 0.4,
           "best_epoch": 1, "warmup_end": None, "wall_s": 1.0, "images_per_s": 1.0,
           "auc": None, "train_accuracy": None, "memorised": None, "memorised_curve": "{}",
           "epochs": 100}
    assert "| DivideMix | yes, autoaugment warm-up | sym:0.5 | 1 |" in markdown([row], "h")


@pytest.mark.only_backend("tensorflow", reason="the command line's own check")
def test_the_command_line_takes_the_arm_for_sanm_dividemix_only(tmp_path):
    for extra in (["--method", "ce"], ["--method", "dividemix", "--no-sanm"]):
        with pytest.raises(SystemExit, match="--warmup-augment sets SANM"):
            cli.main(["train", "--warmup-augment", "autoaugment", *extra,
                      "--data-dir", os.fspath(tmp_path)])
    with pytest.raises(SystemExit, match="--sanm-without strong_warmup is the weak warm-up"):
        cli.main(["train", "--method", "dividemix", "--warmup-augment", "autoaugment",
                  "--sanm-without", "strong_warmup", "--data-dir", os.fspath(tmp_path)])
