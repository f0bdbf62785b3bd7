"""keras_sanm/backend/xla_cpu.py: XLA's own CPU convolutions on JAX, set only where measured."""

import os
import subprocess
import sys

import pytest

from keras_sanm.backend.xla_cpu import FLAG, cpu_convolution_flags


def test_the_flag_is_added_for_measured_jaxlib_versions_only():
    assert cpu_convolution_flags("", "0.10.2", None) == FLAG
    assert cpu_convolution_flags("--xla_cpu_use_xnnpack=true", "0.10.0", None) == (
        f"--xla_cpu_use_xnnpack=true {FLAG}")
    assert cpu_convolution_flags("", "0.9.1", None) is None  # not measured: no flag guessed
    assert cpu_convolution_flags("", "0.11.0", None) is None


def test_the_users_own_setting_and_the_opt_out_are_kept():
    own = "--xla_cpu_experimental_ynn_fusion_type=individual_dot"
    assert cpu_convolution_flags(own, "0.10.2", None) is None
    for value in ("0", "false", "OFF"):
        assert cpu_convolution_flags("", "0.10.2", value) is None
    assert cpu_convolution_flags("", "0.10.2", "1") == FLAG


def _run(code, **env):
    environment = {k: v for k, v in os.environ.items()
                   if k not in ("XLA_FLAGS", "KERAS_SANM_XLA_CPU_DEFAULTS")}
    environment.update(KERAS_BACKEND="jax", **env)
    return subprocess.run([sys.executable, "-W", "error::UserWarning:keras_sanm", "-c", code],
                          capture_output=True, text=True, env=environment, timeout=300)


CONVOLVE = """
import os, keras_sanm, keras, numpy as np
x = np.ones((2, 8, 8, 3), "float32")
y = keras.ops.conv(x, np.ones((3, 3, 3, 4), "float32"), padding="same")
print(repr(os.environ.get("XLA_FLAGS")), float(keras.ops.sum(y)))
"""


@pytest.mark.only_backend("jax", reason="a flag of JAX's XLA")
def test_importing_the_package_sets_the_flag_and_jax_accepts_it():
    import jaxlib

    done = _run(CONVOLVE)
    assert done.returncode == 0, done.stderr[-2000:]  # an unknown XLA flag stops the process
    flags, total = done.stdout.split()[-2:]
    measured = cpu_convolution_flags("", jaxlib.__version__, None) is not None
    assert (FLAG in flags) is measured
    assert float(total) == 2 * 4 * 3 * 22 * 22  # batch x out x in x same-padded 3x3 overlaps
    kept = _run(CONVOLVE, KERAS_SANM_XLA_CPU_DEFAULTS="0")
    assert kept.returncode == 0 and FLAG not in kept.stdout
