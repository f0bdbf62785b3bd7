"""The method registry: each method's folder declares it; nothing else lists methods."""

import importlib
import os
import subprocess
import sys

import pytest

from keras_sanm import cli, methods, presets
from keras_sanm.benchmarks import accuracy
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
            "from keras_sanm.benchmarks import accuracy\n"
            "cli.build_parser()\n[methods.get(n) for n in methods.names()]\n"
            "accuracy.grid(accuracy.BUDGETS['cpu-regime'], list(methods.names()), True)\n"
            "print('keras' in sys.modules)")
    env = {k: v for k, v in os.environ.items() if k != "KERAS_BACKEND"}
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                          env=env, timeout=120)
    assert done.returncode == 0, done.stderr[-2000:]
    assert done.stdout.split()[-1] == "False"
