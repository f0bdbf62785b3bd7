"""benchmarks/conv_rate.py, torch_layout.py and kernel_paths.py run and report what they measure."""

import os
import sys

import pytest

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, os.path.join(ROOT, "benchmarks"))

import conv_rate  # noqa: E402


def test_conv_rate_times_every_stage():
    result = conv_rate.measure(rounds=1, batch=2)
    # Forward, input gradient and kernel gradient of a 3x3 convolution, batch 2:
    # 3 x 2 x 2 x (s x s x c x c x 9) operations per stage.
    assert result["work"] == {"32x32x64": 452984832, "16x16x128": 452984832,
                              "8x8x256": 452984832, "4x4x512": 452984832}
    for stage, flop in result["work"].items():
        assert result["seconds"][stage] > 0
        assert result[stage] == pytest.approx(flop / result["seconds"][stage] / 1e9)
    assert result["all_gflops"] == pytest.approx(
        sum(result["work"].values()) / sum(result["seconds"].values()) / 1e9)


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


def test_kernel_paths_compare_the_step_before_and_after_on_every_backend(capsys):
    import keras
    import kernel_paths

    from keras_sanm.backbones import layers
    from keras_sanm.backend import fused_batch_norm, store_conv_kernel_natively

    rows = kernel_paths.measure(["ce"], rounds=1, batch=4, width=4)
    assert [r["step"] for r in rows] == ["ce"] and rows[0]["before"] > 0 < rows[0]["after"]
    assert "| ce |" in capsys.readouterr().out
    assert layers.fused_batch_norm is fused_batch_norm
    assert layers.store_conv_kernel_natively is store_conv_kernel_natively
    if keras.backend.backend() == "torch":  # the "before" build keeps Keras' kernel order
        _, models = kernel_paths.build_steps("ce", batch=4, width=4)
        order = {v: [w for w in models[v].trainable_weights if tuple(w.shape) == (3, 3, 4, 8)]
                 [0].value.is_contiguous() for v in kernel_paths.VARIANTS}
        assert order == {"before": True, "after": False}


@pytest.mark.only_backend("jax", reason="a profile of XLA's operations")
def test_jax_step_profile_sums_the_steps_operations(capsys, tmp_path):
    import jax_step_profile

    assert jax_step_profile.main(["--batch-size", "4", "--width", "4", "--steps", "1",
                                  "--top", "3"]) == 0
    out = capsys.readouterr().out
    rows = [line for line in out.splitlines() if line.startswith("| ") and "---" not in line]
    assert rows[0] == "| operation kind | ms per step |" and len(rows) == 4
    assert all(float(row.split(" | ")[1].rstrip(" |")) >= 0 for row in rows[1:])
    # A trace folder without a trace is an error, not an empty table.
    with pytest.raises(SystemExit, match="no trace"):
        jax_step_profile.operation_times(str(tmp_path), steps=1)
