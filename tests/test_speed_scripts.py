"""benchmarks/conv_rate.py and benchmarks/torch_layout.py run and report what they measure."""

import os
import sys

import pytest

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, os.path.join(ROOT, "benchmarks"))

import conv_rate  # noqa: E402


def test_conv_rate_times_every_stage():
    result = conv_rate.measure(rounds=1, batch=2)
    stages = [f"{s}x{s}x{c}" for s, c in conv_rate.STAGES]
    assert all(result[name] > 0 for name in stages + ["all_gflops"])


@pytest.mark.only_backend("torch", reason="the layouts of Keras' torch backend")
def test_torch_layout_steps_compare_three_builds_of_the_same_step(capsys):
    import torch_layout

    torch_layout.measure_steps(["ce"], rounds=1, batch=4, width=4)
    row = [line for line in capsys.readouterr().out.splitlines() if line.startswith("| ce |")]
    assert len(row) == 1 and len(row[0].split("|")) == len(torch_layout.STEP_VARIANTS) + 4
    # The fused batch norm is switched back on after the measurement.
    from keras_sanm.backbones import layers
    from keras_sanm.backend import fused_batch_norm

    assert layers.fused_batch_norm is fused_batch_norm
