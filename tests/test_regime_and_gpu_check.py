"""`python -m benchmarks regime` (criteria, resumable search) and the budgeted GPU check."""

import json

import pytest

from benchmarks.__main__ import main as bench
from benchmarks.harness import gpu_check, regime

from conftest import HARNESS_ONLY, write_jpeg_npz

pytestmark = pytest.mark.slow  # end-to-end: `pytest -m "not slow"` skips them


def test_candidate_parsing_and_work():
    candidate = regime.Candidate.parse("2500x16x100")
    assert (candidate.train_size, candidate.width, candidate.epochs) == (2500, 16, 100)
    assert candidate.work == 4 * regime.Candidate.parse("2500x8x100").work
    for bad in ("2500x16", "ax16x100", "0x16x100"):
        with pytest.raises(Exception, match="candidate"):
            regime.Candidate.parse(bad)


def test_verdict_needs_both_criteria():
    row = {"train_accuracy": 0.70, "correct_fraction": 0.55, "best": 0.40, "last": 0.34}
    v = regime.verdict(row, 0.10, 0.05)
    assert v["fit_excess"] == pytest.approx(0.15) and v["drop"] == pytest.approx(0.06)
    assert v["qualifies"]
    assert not regime.verdict({**row, "train_accuracy": 0.64}, 0.10, 0.05)["qualifies"]
    assert not regime.verdict({**row, "last": 0.36}, 0.10, 0.05)["qualifies"]


@HARNESS_ONLY
def test_regime_search_runs_ce_per_seed_and_stops_at_a_failing_seed(tmp_path):
    write_jpeg_npz(tmp_path / "cifar10_jpeg.npz")
    out = tmp_path / "regime"
    argv = ["regime", "--data-dir", str(tmp_path), "--out", str(out),
            "--candidates", "64x2x2,96x2x2", "--test-size", "40", "--seeds", "0,1",
            "--backend", __import__("keras").backend.backend()]
    # Criteria nothing can meet: each candidate stops after its first seed.
    assert bench(argv + ["--fit-margin", "2"]) == 0
    page = (out / "regime.md").read_text()
    assert "No candidate qualifies." in page and page.count("| 64x2x2 | 0 |") == 1
    assert not (out / "64x2x2" / "ce_sym0.5_s1").exists()
    summary = json.loads((out / "64x2x2" / "ce_sym0.5_s0" / "summary.json").read_text())
    assert summary["sanm"] is False and summary["width"] == 2 and summary["epochs"] == 2
    assert summary["lr_drop_epochs"] == [1] and summary["learning_rates"] == [0.02, 0.002]
    assert 0.0 <= summary["memorised_wrong_labels"] <= 1.0
    assert summary["loss_wrong_labels"] > 0 and summary["loss_correct_labels"] > 0
    # Criteria every run meets: both seeds run, the cheaper candidate is chosen.
    assert bench(argv + ["--fit-margin", "-2", "--drop-margin", "-2"]) == 0
    page = (out / "regime.md").read_text()
    assert "| 96x2x2 | 1 |" in page and "Cheapest qualifying candidate: **64x2x2**." in page


def test_plan_epochs_fits_the_budget():
    # 100 s spent, 10 s + 30 s per epoch pair, 400 s budget: 7 more epochs.
    assert gpu_check.plan_epochs(400, 100, [10.0, 30.0], done=2) == 9
    assert gpu_check.plan_epochs(50, 100, [10.0, 30.0], done=2) == 2  # over budget: stop
    assert gpu_check.plan_epochs(1e9, 0, [1.0, 1.0], done=2) == gpu_check.MAX_EPOCHS


@HARNESS_ONLY
def test_gpu_check_trains_both_models_the_same_epochs_with_the_drop_at_half(tmp_path):
    write_jpeg_npz(tmp_path / "cifar10_jpeg.npz")
    out = tmp_path / "check"
    # No time left after the two calibration epochs: the floor of 4 epochs decides.
    assert gpu_check.main(["--data-dir", str(tmp_path), "--out", str(out), "--budget-seconds",
                           "0", "--min-epochs", "4", "--width", "2", "--batch-size", "16",
                           "--dtype-policy", "float32", "--pretrain-seconds", "0"]) == 0
    for run in ("ce_sym0.5_s0", "ce_sanm_sym0.5_s0"):
        summary = json.loads((out / run / "summary.json").read_text())
        history = json.loads((out / run / "history.json").read_text())
        assert summary["epochs"] == 4 and summary["lr_drop_epochs"] == [2]
        assert history["learning_rate"] == [0.02, 0.02, 0.002, 0.002]
        assert len(history["val_accuracy"]) == 4
        assert 0.0 <= summary["memorised_wrong_labels"] <= 1.0
    assert summary["learning_rates"] == [0.02, 0.002]
    # SANM(CE) trains its masked copies on the refined label, the default.
    assert "| CE | yes, refined targets on masked copies | sym:0.5 | 1 |" in (
        out / "results.md").read_text()


@HARNESS_ONLY
def test_gpu_check_pretrains_once_and_starts_both_models_from_it(tmp_path):
    write_jpeg_npz(tmp_path / "cifar10_jpeg.npz")
    out = tmp_path / "check"
    # A pretraining budget shorter than one epoch still trains one epoch.
    assert gpu_check.main(["--data-dir", str(tmp_path), "--out", str(out), "--budget-seconds",
                           "0", "--min-epochs", "2", "--width", "2", "--batch-size", "16",
                           "--dtype-policy", "float32", "--pretrain-seconds", "0.001",
                           "--pretrain-batch-size", "32"]) == 0
    summaries = [json.loads((out / run / "summary.json").read_text())
                 for run in ("ce_sym0.5_s0", "ce_sanm_sym0.5_s0")]
    assert summaries[0]["pretraining"] == summaries[1]["pretraining"]
    record = summaries[0]["pretraining"]
    assert summaries[0]["init"] == "simclr" and record["epochs"] == 1
    assert 0.0 <= record["knn_before"] <= 1.0 and 0.0 <= record["knn_after"] <= 1.0
    assert "start from the same SimCLR pretraining: 1 epochs" in (out / "results.md").read_text()


def test_the_drop_comes_at_half_and_never_inside_the_calibration_epochs():
    assert gpu_check.drop_epochs(4, calibrated=2) == (2,)
    assert gpu_check.drop_epochs(100, calibrated=2) == (50,)
    assert gpu_check.drop_epochs(3, calibrated=2) == () and gpu_check.drop_epochs(2, 2) == ()
