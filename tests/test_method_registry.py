"""The method registry: each method's folder declares it; nothing else lists methods."""

import importlib
import os
import subprocess
import sys

import pytest

from benchmarks.harness import accuracy
from keras_sanm import cli, methods, presets
from keras_sanm.methods.spec import MethodSpec


def test_every_method_folder_is_found_and_its_trainers_load():
    assert methods.names() == ("cdr", "ce", "coteaching", "dividemix", "elr_plus", "ssr")
    for name in methods.names():
        spec = methods.get(name)
        assert isinstance(spec, MethodSpec) and spec.name == name
        plain, with_sanm = spec.trainers()
        assert plain.method_name == with_sanm.method_name == name
        # The folder reaches its trainers module's names (tests and users import them).
        assert getattr(importlib.import_module(f"keras_sanm.methods.{name}"), spec.plain) is plain
    with pytest.raises(ValueError, match="Unknown method 'mixup'; available"):
        methods.get("mixup")


def test_every_user_of_methods_reads_the_registry():
    assert cli.METHOD_NAMES == methods.names()
    assert set(accuracy.METHOD_LABELS) == set(methods.names())
    assert cli.ABLATION_PARTS == {"dividemix": ("strong_views", "strong_warmup", "masking")}
    assert presets.preset_methods() == ("cdr", "coteaching", "dividemix", "elr_plus")
    # A declared default reaches the command line and wrap without a branch on the name.
    assert methods.get("coteaching").backbone == "cnn9"
    assert presets.preset_config("cifar10-sym-0.5", "coteaching") == {
        "forget_rate": 0.5, "decay_start": 80}
    with pytest.raises(ValueError, match="Presets exist for methods"):
        presets.preset_config("cifar10-sym-0.5", "ce")
    with pytest.raises(SystemExit, match="--method dividemix and without --no-sanm"):
        cli.main(["train", "--method", "ce", "--sanm-without", "masking"])


def test_the_declarations_import_no_keras():
    # The command line parses --method (and the benchmark harness plans its
    # cells) before a backend is chosen: none of it may import Keras.
    code = ("import sys\nfrom keras_sanm import cli, methods\n"
            "from benchmarks.harness import accuracy\n"
            "cli.build_parser()\n[methods.get(n) for n in methods.names()]\n"
            "accuracy.grid(accuracy.BUDGETS['cpu-regime'], list(methods.names()), True)\n"
            "print('keras' in sys.modules)")
    env = {k: v for k, v in os.environ.items() if k != "KERAS_BACKEND"}
    root = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                          env=env, timeout=120, cwd=root)
    assert done.returncode == 0, done.stderr[-2000:]
    assert done.stdout.split()[-1] == "False"


@pytest.mark.parametrize("name", methods.names())
def test_each_place_that_names_methods_reads_the_registry(name, capsys):
    """Adding a method is its folder and its `SPEC`: the command line's help, the
    figures' labels, the accuracy budgets, the speed harness and the tests'
    small-data options all come from the declaration."""
    import keras

    import keras_sanm
    from benchmarks.harness import step_time
    from keras_sanm.viz.run_figures import run_label

    from conftest import small_cnn, small_data_options

    spec = methods.get(name)
    # The command line: the choice, and the defaults its help states.
    with pytest.raises(SystemExit):
        cli.main(["train", "--help"])
    help_text = " ".join(capsys.readouterr().out.split())
    assert name in cli.METHOD_NAMES and spec.label in help_text
    assert f"{spec.label} {spec.reference_epochs}" in help_text  # --epochs
    assert f"{spec.label} {spec.batch_size}" in help_text  # --batch-size
    assert f"{spec.label} {spec.backbone}" in help_text  # --backbone
    # Figures and tables name it by its label.
    assert run_label({"method": name, "sanm": True}) == f"SANM({spec.label})"
    assert run_label({"method": name, "sanm": False}) == spec.label
    assert accuracy.METHOD_LABELS[name] == spec.label
    # The budgets the grids run on cover it; the speed harness measures it.
    for budget in ("cpu-regime", "smoke"):
        assert accuracy.BUDGETS[budget].epochs[name] > 0
    assert (name, spec.label) in step_time.VARIANTS
    # The tests' small-data options build a model of the method, plain and with SANM.
    options = small_data_options(name, 32, 8)
    for sanm in (False, True):
        model = keras_sanm.wrap(small_cnn(), method=name, sanm=sanm, seed=0, **options)
        assert model.method_name == name
        assert model.reference_epochs == options.get("epochs", spec.reference_epochs)
    keras.backend.clear_session()
