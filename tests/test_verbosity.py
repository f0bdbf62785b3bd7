"""`fit(..., verbose=0)` prints nothing; what the package decides is logged instead.

Every method, from arrays (the input preprocessing is decided, CDR's and
Co-teaching's rates are estimated) and from a `tf.data` dataset (the
methods with per-sample state copy it to disk first).
"""

import logging
import re

import numpy as np
import pytest

import keras_sanm
from keras_sanm import methods

from conftest import learnable_problem, small_cnn, small_data_options

# method -> wrap options that make every decision happen within two short epochs
# (the registry's for small data; the noise rates estimated after one epoch).
OPTIONS = {name: small_data_options(name, 48, 16, noise_rate=None) for name in methods.names()}
# ELR+ infers its sample count from the first fit and reports it: leave it out.
del OPTIONS["elr_plus"]["num_samples"]
# What each method's fit reports at verbose > 0 (besides the preprocessing).
REPORTS = {"cdr": "noise_rate=", "coteaching": "forget_rate=", "elr_plus": "num_samples="}


# TensorFlow's own C++ log (e.g. "I0000 00:00:... generator_dataset_op.cc:213] Memory
# patch applied", once per process) goes to stderr whatever Keras' verbosity; it
# is TensorFlow's, silenced with TF_CPP_MIN_LOG_LEVEL, not the package's output.
TF_NATIVE_LOG = re.compile(r"^[IWE]\d{4} [\d:.]+ +\d+ [\w.]+:\d+\] .*$\n?", re.MULTILINE)


def printed_by_python(captured) -> tuple[str, str]:
    """Captured stdout and stderr without TensorFlow's native log lines."""
    return captured.out, TF_NATIVE_LOG.sub("", captured.err)


def uint8_problem(n=48):
    images, labels = learnable_problem(n, size=16)
    return np.clip((images + 3.0) / 6.0 * 255.0, 0, 255).astype("uint8"), labels


def _fit(method, x, y, verbose, sanm=False):
    model = keras_sanm.wrap(small_cnn(), method=method, sanm=sanm, seed=0, **OPTIONS[method])
    model.compile()
    batch = None if keras_sanm.methods.get(method).batch_size_option else 16
    model.fit(x, y, batch_size=batch, epochs=2, verbose=verbose)


# What is printed is host code, the same on every backend: each method once,
# and the two fit loops (Keras' and the alternating one) on every backend.
EVERY_BACKEND = ("ce", "dividemix")
HOST_SIDE_ONLY = pytest.mark.only_backend(
    "tensorflow", reason="the package's messages are host code, the same on every backend; "
    "CE and DivideMix (both fit loops) run on every backend")


@pytest.mark.parametrize("method", [m if m in EVERY_BACKEND else pytest.param(m, marks=HOST_SIDE_ONLY)
                                    for m in sorted(OPTIONS)])
def test_verbose_0_prints_nothing_and_logs_what_fit_decided(method, capfd, caplog):
    x, y = uint8_problem()
    capfd.readouterr()
    # (Warnings, e.g. of an estimate from a model near chance, go through
    # `warnings`, which pytest records instead of printing.)
    with caplog.at_level(logging.INFO, logger="keras_sanm"):
        _fit(method, x, y, verbose=0)
    assert printed_by_python(capfd.readouterr()) == ("", "")
    logged = caplog.text
    assert "Input preprocessing" in logged
    if method in REPORTS:
        assert REPORTS[method] in logged


@HOST_SIDE_ONLY
@pytest.mark.parametrize("method", ["cdr", "elr_plus"])
def test_verbose_fits_still_print_what_they_decided(method, capfd):
    x, y = uint8_problem()
    capfd.readouterr()
    _fit(method, x, y, verbose=2)
    out = capfd.readouterr().out
    assert "Input preprocessing" in out and REPORTS[method] in out


@pytest.mark.parametrize("method", ["dividemix", "ce"])
def test_verbose_0_prints_nothing_for_a_dataset(method, capfd, caplog):
    tf = pytest.importorskip("tensorflow")
    x, y = uint8_problem(32)
    dataset = tf.data.Dataset.from_tensor_slices((x, y)).batch(16)
    capfd.readouterr()
    with caplog.at_level(logging.INFO, logger="keras_sanm"):
        model = keras_sanm.wrap(small_cnn(), method=method, sanm=True, seed=0,
                                **({"warmup_epochs": 1} if method == "dividemix" else {}))
        model.fit(dataset, epochs=1, verbose=0)
    assert printed_by_python(capfd.readouterr()) == ("", "")
    if method == "dividemix":  # per-sample state: the dataset is copied, and that is logged
        assert "on-disk copy" in caplog.text

