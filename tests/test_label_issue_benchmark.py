"""`python -m benchmarks label-issues` at smoke size: every approach runs, is scored
against the flipped labels, and a second call reuses every finished cell."""

import csv
import os

import pytest

from benchmarks.harness import label_issues

from conftest import HARNESS_ONLY, write_jpeg_npz


@pytest.mark.slow
@HARNESS_ONLY
def test_every_approach_is_scored_and_the_grid_resumes(tmp_path, capsys):
    write_jpeg_npz(tmp_path / "cifar10_jpeg.npz", n_train=96, n_test=40)
    out = tmp_path / "issues"
    # Every kind of approach (SANM(DivideMix) and cleanlab on it take the same paths as
    # DivideMix's rows, so the test leaves them out to stay short).
    approaches = [a for a in label_issues.APPROACHES if "sanm" not in a]
    argv = ["--budget", "smoke", "--noises", "sym:0.4", "--seeds", "0",
            "--approaches", ",".join(approaches), "--data-dir", str(tmp_path), "--out", str(out)]
    assert label_issues.main(argv) == 0
    with open(out / "runs.csv") as f:
        rows = {row["approach"]: row for row in csv.DictReader(f)}
    assert list(rows) == approaches
    # 38 of 96 labels redrawn at 40% symmetric noise (a redraw may land on the true
    # class); every approach is scored against the same wrong labels.
    assert len({row["wrong"] for row in rows.values()}) == 1
    for approach, row in rows.items():
        assert 30 <= int(row["wrong"]) <= 38 and int(row["samples"]) == 96
        for key in ("precision", "recall", "f1", "auroc"):
            assert 0.0 <= float(row[key]) <= 1.0, (approach, key)
        assert float(row["wall_s"]) > 0
    # cleanlab on a method's model adds only its scoring to that method's training.
    assert float(rows["cleanlab_on_dividemix"]["train_s"]) == 0.0
    assert float(rows["dividemix"]["train_s"]) > 0
    assert float(rows["ssr_selection"]["train_s"]) == 0.0 and float(rows["ssr"]["train_s"]) > 0
    # The cross-validation trained five folds of the same noisy labels.
    folds = out / "cleanlab_cv_ce_sym0.4_s0" / "folds"
    assert sorted(p for p in os.listdir(folds) if p.endswith(".npy")) == [
        f"fold_{k}.npy" for k in range(5)]
    table = (out / "results.md").read_text()
    assert table.count("| sym:0.4 |") == len(approaches) and "**" in table
    # A second call trains and scores nothing again.
    stamp = os.path.getmtime(out / "dividemix_sym0.4_s0" / label_issues.SCORES)
    assert label_issues.main(argv) == 0
    assert os.path.getmtime(out / "dividemix_sym0.4_s0" / label_issues.SCORES) == stamp
    with pytest.raises(SystemExit, match="unknown"):
        label_issues.main(argv[:6] + ["--approaches", "knn"] + argv[8:])
