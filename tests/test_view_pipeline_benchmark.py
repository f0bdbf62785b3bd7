"""benchmarks/view_pipeline.py: host and device views of a SANM(DivideMix) step, timed."""

import os
import sys

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, os.path.join(ROOT, "benchmarks"))

import view_pipeline  # noqa: E402


def test_both_sides_make_a_steps_views_and_are_timed():
    result = view_pipeline.measure(batch_size=4, rounds=2)
    # 4 labeled + 4 unlabeled samples, 6 views each: what the device side drew.
    assert result["images_per_step"] == result["device_images"] == 2 * 4 * 6
    assert result["rounds"] == {"host": 2, "device": 2}
    assert result["host_s"] > 0 and result["device_s"] > 0
    assert result["device_kind"] in ("cpu", "gpu", "tpu")


def test_table_row_reports_rates_and_ratio_of_the_timings():
    row = view_pipeline.table_row("jax", {"device_kind": "cpu", "images_per_step": 48,
                                          "host_s": 0.2, "device_s": 0.05})
    assert row == "| jax (cpu) | 48 | 0.200 | 240 | 0.050 | 960 | 4.00x |"
