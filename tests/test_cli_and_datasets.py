import json
import os

import numpy as np
import pytest

from keras_sanm import cli, datasets

from conftest import CLI_ONLY, write_animal10n, write_jpeg_npz


def test_local_loader_and_subset(tmp_path):
    arrays = write_jpeg_npz(tmp_path / "cifar10_jpeg.npz")
    data = datasets.load("cifar10", str(tmp_path))
    assert data.x_train.shape == (96, 32, 32, 3) and data.x_train.dtype == np.uint8
    np.testing.assert_array_equal(data.y_test, arrays["y_test"])
    sub = datasets.load("cifar10", str(tmp_path), train_size=10, test_size=5)
    assert sub.x_train.shape[0] == 10 and sub.x_test.shape[0] == 5
    with pytest.raises(ValueError, match="Unknown dataset"):
        datasets.load("mnist", str(tmp_path))


def test_shared_cifar10_when_present():
    path = os.path.join(os.path.dirname(__file__), "..", "..", "shared", "data", "cifar10")
    if not os.path.exists(os.path.join(path, "cifar10_jpeg.npz")):
        pytest.skip("../shared/data/cifar10 is not beside the checkout")
    data = datasets.load("cifar10", path, train_size=50, test_size=20)
    assert data.x_train.shape == (50, 32, 32, 3) and data.num_classes == 10
    assert 0 <= data.y_train.min() and data.y_train.max() <= 9


def test_train_command_one_tiny_epoch(tmp_path, capsys):
    write_jpeg_npz(tmp_path / "cifar10_jpeg.npz")
    out = tmp_path / "run"
    cli.main([
        "train", "--dataset", "cifar10", "--data-dir", str(tmp_path), "--noise", "sym:0.5",
        "--method", "ce", "--backbone", "small_cnn", "--epochs", "1", "--batch-size", "32",
        "--output", str(out), "--verbose", "0",
    ])
    summary = json.loads((out / "summary.json").read_text())
    assert summary["epochs"] == 1 and summary["sanm"] is True
    assert 0.0 <= summary["best_test_accuracy"] <= 1.0
    assert (out / "cifar10_0.5_sym.json").exists()
    log = (out / "log.csv").read_text().splitlines()
    assert len(log) == 2 and "val_accuracy" in log[0] and "reconstruction_loss" in log[0]
    assert "best test accuracy" in capsys.readouterr().out


@CLI_ONLY
def test_train_command_dividemix_with_preset(tmp_path):
    write_jpeg_npz(tmp_path / "cifar10_jpeg.npz")
    out = tmp_path / "run"
    cli.main([
        "train", "--dataset", "cifar10", "--data-dir", str(tmp_path), "--method", "dividemix",
        "--preset", "cifar10-sym-0.5", "--warmup-epochs", "1", "--backbone", "small_cnn",
        "--epochs", "2", "--batch-size", "16", "--output", str(out), "--verbose", "0",
    ])
    summary = json.loads((out / "summary.json").read_text())
    assert summary["noise"] == "sym:0.5" and summary["preset"] == "cifar10-sym-0.5"
    assert summary["method"] == "dividemix" and summary["sanm"] is True
    log = (out / "log.csv").read_text().splitlines()
    assert len(log) == 3 and "labeled_1" in log[0] and "reconstruction_loss" in log[0]
    with pytest.raises(SystemExit, match="preset"):
        cli.main(["train", "--dataset", "cifar100", "--preset", "cifar10-sym-0.5",
                  "--data-dir", str(tmp_path)])


@CLI_ONLY
@pytest.mark.parametrize("method,key", [("coteaching", "forget_rate"), ("cdr", None),
                                        ("elr_plus", "elr_loss"), ("ssr", "clean_precision")])
def test_train_command_other_methods(tmp_path, method, key):
    write_jpeg_npz(tmp_path / "cifar10_jpeg.npz")
    out = tmp_path / "run"
    cli.main([
        "train", "--dataset", "cifar10", "--data-dir", str(tmp_path), "--noise", "sym:0.4",
        "--method", method, "--backbone", "small_cnn", "--epochs", "1", "--batch-size", "16",
        "--output", str(out), "--verbose", "0",
    ])
    summary = json.loads((out / "summary.json").read_text())
    assert summary["method"] == method and summary["sanm"] is True
    history = json.loads((out / "history.json").read_text())
    assert "reconstruction_loss" in history and "val_accuracy" in history
    if key:
        assert key in history
    if method == "coteaching":
        assert history["forget_rate"] == [pytest.approx(0.4 / 9)]
    if method == "ssr":  # the selection is scored against the true labels
        assert 0.0 <= history["clean_precision"][0] <= 1.0 and history["clean_count"][0] > 0


def test_cli_argument_errors():
    with pytest.raises(SystemExit):
        cli.main(["train", "--noise", "sym-0.5"])
    with pytest.raises(SystemExit):
        cli.main(["train", "--noise", "pair:0.2"])


@pytest.mark.parametrize("argv, message", [
    (["train", "--epochs", "0"], "--epochs: must be at least 1"),
    (["train", "--batch-size", "0"], "--batch-size: must be at least 1"),
    (["train", "--train-size", "0"], "--train-size: must be at least 1"),
    (["train", "--test-size", "-3"], "--test-size: must be at least 1"),
    (["train", "--width", "half"], "--width: expected a whole number"),
    (["train", "--warmup-epochs", "-1"], "--warmup-epochs: must be at least 0"),
    (["train", "--dataset", "cifar11"], "--dataset: invalid choice: 'cifar11'"),
    (["train", "--backbone", "resnet34"], "--backbone: invalid choice: 'resnet34'"),
    (["train", "--preset", "cifar10-sym-0.55"], "--preset: invalid choice"),
    (["train", "--data-dir", "no/such/folder"], "--data-dir: no such file or folder"),
    (["demo", "--noise-rate", "1.5"], "--noise-rate: must be in [0, 1)"),
    (["demo", "--epochs", "0"], "--epochs: must be at least 1"),
    (["plot", "some_run", "--samples", "0"], "--samples: must be at least 1"),
    (["pretrain", "--output", "o", "--epochs", "0"], "--epochs: must be at least 1"),
    (["pretrain", "--output", "o", "--extra-images", "-1"], "--extra-images: must be at least 0"),
    (["pretrain"], "the following arguments are required: --output"),
    (["train", "--init", "no/such/folder"], "--init: no such file or folder"),
])
def test_cli_refuses_bad_values_as_usage_errors(argv, message, capsys):
    with pytest.raises(SystemExit) as exit_info:
        cli.main(argv)
    assert exit_info.value.code == 2  # argparse's usage error, before any data or model
    assert message in capsys.readouterr().err


def test_cli_name_lists_match_the_registries_and_every_option_has_help():
    from keras_sanm import backbones, presets

    assert set(cli.DATASET_NAMES) == set(datasets.DATASETS)
    assert set(cli.BACKBONE_NAMES) == set(backbones.BACKBONES)
    parser = cli.build_parser()
    commands = next(a for a in parser._actions if a.dest == "command").choices
    for name, command in commands.items():
        for action in command._actions:
            assert action.help, f"keras-sanm {name} {action.option_strings or action.dest}"
    assert all(p in commands["train"].format_help().replace("\n", " ").replace(" ", "")
               for p in presets.PRESETS)  # --help lists the presets


def test_backend_default_falls_back_to_an_installed_one(monkeypatch, tmp_path, capsys):
    monkeypatch.delenv("KERAS_BACKEND", raising=False)
    monkeypatch.setenv("KERAS_HOME", str(tmp_path))
    (tmp_path / "keras.json").write_text('{"backend": "tensorflow"}')
    monkeypatch.setattr(cli, "_installed", lambda backend: backend != "tensorflow")
    assert cli._default_backend() == "jax"
    assert "tensorflow, Keras' configured backend, is not installed" in capsys.readouterr().err
    monkeypatch.setattr(cli, "_installed", lambda backend: backend == "torch")
    assert cli._default_backend() == "torch" and "Keras backend: torch" in capsys.readouterr().err
    monkeypatch.setattr(cli, "_installed", lambda backend: True)
    assert cli._default_backend() == "tensorflow" and capsys.readouterr().err == ""
    monkeypatch.setattr(cli, "_installed", lambda backend: False)
    with pytest.raises(SystemExit, match="No Keras backend is installed"):
        cli._default_backend()
    monkeypatch.setenv("KERAS_BACKEND", "torch")  # the environment decides
    assert cli._default_backend() is None


def _hide_module(monkeypatch, hidden):
    import importlib.util

    find_spec = importlib.util.find_spec
    monkeypatch.setattr(importlib.util, "find_spec",
                        lambda name, *args: None if name == hidden else find_spec(name, *args))


def test_missing_optional_packages_give_install_hints(monkeypatch, tmp_path):
    _hide_module(monkeypatch, "tensorflow_datasets")
    with pytest.raises(ImportError, match=r"no cifar10_jpeg.npz in .*keras-sanm\[tfds\]"):
        datasets.load("cifar10", str(tmp_path))
    with pytest.raises(SystemExit, match=r"--dataset cifar10: there is no cifar10_jpeg.npz"):
        cli.main(["train", "--data-dir", str(tmp_path), "--epochs", "1"])
    _hide_module(monkeypatch, "matplotlib")
    with pytest.raises(SystemExit, match=r"matplotlib: pip install 'keras-sanm\[viz\]'"):
        cli.main(["plot", str(tmp_path)])


@pytest.mark.slow
@pytest.mark.only_backend("jax", reason="README command 1 runs the demo on JAX; its "
                          "training is tested on every backend")
def test_demo_reports_progress_and_says_which_model_ended_higher(capsys):
    results = cli.main(["demo", "--epochs", "2", "--noise-rate", "0.3"])
    out = capsys.readouterr().out
    assert results == 0
    assert "CE epoch 1/2: test accuracy" in out and "SANM(CE) epoch 2/2" in out
    assert "last = test accuracy after the final epoch" in out
    assert "SANM(CE) - CE:" in out and "ended higher in this one run" in out
    verdict = cli.demo_verdict({"CE": {"last": 0.5, "best": 0.6},
                                "SANM(CE)": {"last": 0.55, "best": 0.58}})
    assert "+5.0 points last, -2.0 best: SANM(CE) ended higher" in verdict


def test_train_refuses_a_bad_ablation_or_drop_epochs(tmp_path):
    from keras_sanm import cli

    base = ["train", "--data-dir", str(tmp_path), "--output", str(tmp_path / "run")]
    with pytest.raises(SystemExit, match="unknown parts"):
        cli.main(base + ["--method", "dividemix", "--sanm-without", "decoder"])
    with pytest.raises(SystemExit, match="--method dividemix"):
        cli.main(base + ["--method", "ce", "--sanm-without", "masking"])
    with pytest.raises(SystemExit, match="--method dividemix"):
        cli.main(base + ["--method", "dividemix", "--no-sanm", "--sanm-without", "masking"])
    targets = "--method cdr, --method ce, --method coteaching, --method elr_plus and without --no-sanm"
    with pytest.raises(SystemExit, match=targets):
        cli.main(base + ["--method", "ce", "--no-sanm", "--masked-targets", "refined"])
    with pytest.raises(SystemExit, match=targets):
        cli.main(base + ["--method", "dividemix", "--masked-targets", "refined"])
    with pytest.raises(SystemExit):
        cli.main(base + ["--method", "ce", "--masked-targets", "prediction"])
    with pytest.raises(SystemExit, match="--mask-aspect: mask aspect 'round'"):
        cli.main(base + ["--mask-aspect", "round"])
    with pytest.raises(SystemExit, match="does not apply with --no-sanm"):
        cli.main(base + ["--no-sanm", "--mask-aspect", "fixed:1"])
    with pytest.raises(SystemExit, match="comma-separated"):
        cli.main(base + ["--lr-drop-epochs", "half"])
    with pytest.raises(SystemExit, match=">= 1"):
        cli.main(base + ["--lr-drop-epochs", "0"])


@CLI_ONLY
def test_train_sanm_ce_with_refined_masked_targets(tmp_path):
    import keras_sanm

    write_jpeg_npz(tmp_path / "cifar10_jpeg.npz")
    out = tmp_path / "run"
    cli.main(["train", "--data-dir", str(tmp_path), "--backbone", "small_cnn", "--epochs", "2",
              "--batch-size", "16", "--masked-targets", "refined", "--output", str(out),
              "--verbose", "0"])
    summary = json.loads((out / "summary.json").read_text())
    assert summary["masked_targets"] == "refined" and summary["sanm"] is True
    assert keras_sanm.load_model(str(out / "model.keras")).masked_targets == "refined"


@CLI_ONLY
def test_train_with_a_fixed_mask_aspect(tmp_path):
    import keras_sanm

    write_jpeg_npz(tmp_path / "cifar10_jpeg.npz")
    out = tmp_path / "run"
    cli.main(["train", "--data-dir", str(tmp_path), "--backbone", "small_cnn", "--epochs", "1",
              "--batch-size", "16", "--mask-aspect", "fixed:2", "--output", str(out),
              "--verbose", "0"])
    assert json.loads((out / "summary.json").read_text())["mask_aspect"] == "fixed:2"
    model = keras_sanm.load_model(str(out / "model.keras"))
    assert model.noisy_mask.aspect_range == (2.0, 2.0)


@pytest.mark.slow
@CLI_ONLY
def test_train_command_on_a_real_noise_dataset_from_its_published_files(tmp_path, capsys):
    write_animal10n(tmp_path / "animal10n", 48, 16)
    out = tmp_path / "run"
    common = ["train", "--dataset", "animal10n", "--data-dir", str(tmp_path / "animal10n"),
              "--backbone", "small_cnn", "--batch-size", "16", "--verbose", "0"]
    cli.main(common + ["--method", "coteaching", "--epochs", "3", "--output", str(out)])
    printed = capsys.readouterr().out
    assert "real label noise (which labels are wrong is unknown)" in printed
    # No noise rate is given: Co-teaching estimates its forget rate after two epochs.
    assert "forget_rate=" in printed and "estimated after epoch 2" in printed
    summary = json.loads((out / "summary.json").read_text())
    assert summary["noise"] == "real" and summary["actual_noise_rate"] is None
    assert summary["train_size"] == 48 and summary["test_size"] == 16
    history = json.loads((out / "history.json").read_text())
    # Nothing that needs the true training labels is reported.
    assert not any("wrong" in key or "correct" in key or "noise_auc" in key for key in history)
    assert history["forget_rate"][0] == 0.0 and history["forget_rate"][-1] > 0.0
    pytest.importorskip("matplotlib")
    cli.main(["plot", str(out)])
    printed = capsys.readouterr().out
    assert "wrote" in printed and "curves.png" in printed
    assert "skipped activation_maps: animal10n has real label noise" in printed
    for extra, message in ((["--noise", "sym:0.2"], "own noisy labels"),
                           (["--preset", "cifar10-sym-0.5"], "own noisy labels")):
        with pytest.raises(SystemExit, match=message):
            cli.main(common + extra + ["--output", str(tmp_path / "other")])
    with pytest.raises(SystemExit, match="pass --data-dir"):
        cli.main(["train", "--dataset", "clothing1m"])
    with pytest.raises(SystemExit, match="training/ and testing/"):
        cli.main(["train", "--dataset", "animal10n", "--data-dir", str(tmp_path)])
