"""`python -m benchmarks speed`: peak-memory measurement, the summary table, a real one-step run."""

import json

import keras
import numpy as np
import pytest

from benchmarks.__main__ import main as bench
from benchmarks.harness import memory, step_time

from conftest import HARNESS_ONLY

needs_proc = pytest.mark.skipif(not memory.available(), reason="needs Linux /proc peak RSS")


@needs_proc
def test_peak_memory_counts_only_the_block():
    held = np.ones(40_000_000 // 8)  # 40 MB already resident before the block
    with memory.PeakMemory() as outer:
        block = np.ones(200_000_000 // 8)  # 200 MB allocated and touched inside
        del block
    assert 180 <= outer.extra_mib <= 260
    assert outer.peak_mib >= outer.extra_mib + 30  # the peak includes what was already held
    with memory.PeakMemory() as quiet:
        small = np.ones(1000)
    assert quiet.extra_mib < 50  # the earlier 200 MB peak was reset on entry
    del held, small


def test_speed_table_rows_per_method_and_backend():
    result = {"backend": "jax"}
    for name, seconds, peak in (("ce", 1.0, 900.0), ("sanm_ce", 3.5, 1500.0)):
        result.update({f"{name}_step_s": seconds, f"{name}_peak_rss_mib": peak,
                       f"{name}_step_memory_mib": peak / 3})
    table = step_time.speed_table([result, dict(result, backend="torch", ce_peak_rss_mib=None)])
    lines = table.splitlines()
    assert lines[2] == "| CE | jax | 1.000 | 3.500 | 900 | 1500 |"
    assert lines[3] == "| CE | torch | 1.000 | 3.500 | – | 1500 |"
    assert len(lines) == 4  # methods that were not measured get no row
    result.update(ce_batch_build_s=0.01, sanm_ce_batch_build_s=0.02, sanm_ce_over_ce=3.5,
                  mask_and_modulation_s=0.35)
    assert step_time.sanm_table([result]).splitlines()[2] == (
        "| CE | jax | 3.50x | 0.010 / 0.020 | 10.0% |")


@needs_proc
@HARNESS_ONLY
def test_bench_speed_measures_one_step_per_variant(tmp_path, capsys):
    out = tmp_path / "speed.json"
    code = bench(["speed", "--backends", keras.backend.backend(), "--methods", "ce",
                     "--steps", "1", "--batch-size", "8", "--backbone", "small_cnn",
                     "--output", str(out)])
    assert code == 0
    (result,) = json.loads(out.read_text())
    assert result["backbone"] == "small_cnn" and result["backend"] == keras.backend.backend()
    for name in ("ce", "sanm_ce"):
        assert result[f"{name}_step_s"] > 0
        assert result[f"{name}_peak_rss_mib"] > 100  # a process with a Keras backend loaded
        assert 0 <= result[f"{name}_step_memory_mib"] < result[f"{name}_peak_rss_mib"]
    assert result["mask_and_modulation_s"] > 0 and result["ce_batch_build_s"] >= 0
    printed = capsys.readouterr().out
    assert printed.count("| CE | " + keras.backend.backend()) == 2  # both tables
    with pytest.raises(SystemExit, match="unknown"):
        bench(["speed", "--methods", "ce,foo"])
