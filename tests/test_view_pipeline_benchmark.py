"""benchmarks/view_pipeline.py: host and device views of a SANM(DivideMix) step, timed."""

import os
import sys

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, os.path.join(ROOT, "benchmarks"))

import view_pipeline  # noqa: E402


def test_both_sides_make_a_steps_views_and_are_timed():
    result = view_pipeline.measure(batch_size=4, rounds=2)
    assert result["images_per_step"] == 2 * 4 * 6
    assert result["host_s"] > 0 and result["device_s"] > 0
    assert result["device_kind"] in ("cpu", "gpu", "tpu")
