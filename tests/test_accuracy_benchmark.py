"""`python -m benchmarks accuracy`: grid arguments, aggregation, gain verdicts, resumable runs."""

import csv
import json
import math
import os
import shutil

import keras
import pytest

from benchmarks.__main__ import main as bench
from benchmarks.harness import accuracy
from keras_sanm import cli

from conftest import HARNESS_ONLY, write_jpeg_npz


def _rows(method, sanm, best, last, auc=None, noise="sym:0.5"):
    return [{"method": method, "sanm": sanm, "noise": noise, "seed": seed, "best": b, "last": end,
             "last10": end, "train_accuracy": None if auc is None else 0.5,
             "memorised": None if auc is None else 0.25, "wall_s": 10.0,
             "images_per_s": 100.0, "auc": auc, "best_epoch": 3 + seed, "epochs": 5,
             "warmup_end": 0.2 if method == "dividemix" else None}
            for seed, (b, end) in enumerate(zip(best, last))]


def test_memorisation_curve_table_averages_seeds_at_shared_epochs():
    rows = _rows("ce", False, [0.4, 0.4], [0.3, 0.3]) + _rows("ce", True, [0.4, 0.4], [0.3, 0.3])
    curves = ['{"10": 0.1, "20": 0.3}', '{"10": 0.2, "20": 0.5}',
              '{"10": 0.0, "20": 0.2}', '{"20": 0.4}']  # the last run measured epoch 20 only
    for row, curve in zip(rows, curves):
        row["memorised_curve"] = curve
    lines = accuracy.curve_lines(rows)
    assert "| method | SANM | noise | seeds | 10 | 20 |" in lines
    assert "| CE | no | sym:0.5 | 2 | 15.0 | 40.0 |" in lines
    assert "| CE | yes | sym:0.5 | 2 | – | 30.0 |" in lines
    assert "| CE | yes | sym:0.5 | 2 | – | 30.0 |" in accuracy.markdown(rows, "header")
    for row in rows:  # only the last epoch measured: no table
        row["memorised_curve"] = '{"100": 0.5}'
    assert accuracy.curve_lines(rows) == []


def test_summary_rows_mean_and_sample_std():
    rows = _rows("ce", False, [0.40, 0.42, 0.44], [0.30, 0.30, 0.36])
    (entry,) = accuracy.summary_rows(rows)
    assert entry["seeds"] == 3
    assert entry["best_mean"] == pytest.approx(0.42)
    assert entry["best_std"] == pytest.approx(0.02)  # sample std (n - 1)
    assert entry["last_mean"] == pytest.approx(0.32)
    assert entry["last_std"] == pytest.approx(math.sqrt(0.0012))
    assert math.isnan(entry["auc_mean"])  # plain CE has no clean/noisy split


def test_gain_rows_verdict_uses_the_larger_spread_and_pairs_by_seed():
    rows = (_rows("ce", False, [0.40, 0.42, 0.44], [0.30, 0.31, 0.32])
            + _rows("ce", True, [0.50, 0.52, 0.54], [0.305, 0.315, 0.325], auc=0.8)
            + _rows("dividemix", False, [0.5, 0.6, 0.7], [0.5, 0.6, 0.7], auc=0.7)
            + _rows("dividemix", True, [0.55, 0.65, 0.75], [0.45, 0.55, 0.65], auc=0.7))
    gains = {g["method"]: g for g in accuracy.gain_rows(rows)}
    ce, dm = gains["ce"], gains["dividemix"]
    assert ce["best_gain"] == pytest.approx(0.10) and ce["best_spread"] == pytest.approx(0.02)
    assert ce["best_paired_std"] == pytest.approx(0.0, abs=1e-12)
    assert ce["best_beats_spread"] and not ce["last_beats_spread"]  # +0.005 < 0.01
    assert dm["best_gain"] == pytest.approx(0.05) and dm["best_spread"] == pytest.approx(0.1)
    assert not dm["best_beats_spread"]
    assert dm["last_gain"] == pytest.approx(-0.05) and not dm["last_beats_spread"]
    page = accuracy.markdown(rows, "header")
    assert "| CE | sym:0.5 | 3 | +10.00 (0.00) | 2.00 | yes | +0.50 (0.00) | 1.00 | no |" in page
    assert "| CE | no | sym:0.5 | 3 | 42.00 ± 2.00 |" in page
    assert ("| CE | yes | sym:0.5 | 3 | 52.00 ± 2.00 | 31.50 ± 1.00 | 31.50 ± 1.00 | 4.0 / 5 | "
            "50.00 ± 0.00 | 25.00 ± 0.00 | – | 0.800 ± 0.000 |") in page
    assert ("| CE | no | sym:0.5 | 3 | 42.00 ± 2.00 | 31.00 ± 1.00 | 31.00 ± 1.00 | 4.0 / 5 "
            "| – | – | – | – |") in page
    assert ("| DivideMix | yes | sym:0.5 | 3 | 65.00 ± 10.00 | 55.00 ± 10.00 | 55.00 ± 10.00 "
            "| 4.0 / 5 | 50.00 ± 0.00 | 25.00 ± 0.00 | 20.00 ± 0.00 |") in page


def test_a_run_whose_time_is_not_recorded_shows_a_dash():
    # (resumed from a checkpoint that did not record the time in fit)
    rows = _rows("ce", False, [0.4], [0.3])
    rows[0]["wall_s"] = rows[0]["images_per_s"] = None
    assert accuracy.markdown(rows, "h").splitlines()[4].endswith("| – | – | – | – | – | – |")
    rows += _rows("ce", False, [0.4], [0.3])  # a second seed with its time: the known one
    assert accuracy.markdown(rows, "h").splitlines()[4].endswith("| – | 10 | 100 |")


def test_single_seed_never_beats_spread():
    rows = _rows("ce", False, [0.4], [0.4]) + _rows("ce", True, [0.9], [0.9])
    (gain,) = accuracy.gain_rows(rows)
    assert gain["best_gain"] == pytest.approx(0.5) and not gain["best_beats_spread"]


def test_run_row_reads_the_split_start_and_best_epoch(tmp_path):
    nan = float("nan")
    history = {"val_accuracy": [0.2, 0.3, 0.5, 0.4], "accuracy": [nan] * 4,
               "labeled_1": [nan, nan, 900.0, 950.0], "noise_auc_1": [nan, nan, 0.7, 0.8],
               "noise_auc_2": [nan, nan, 0.6, 0.6]}
    summary = {"best_test_accuracy": 0.5, "last_test_accuracy": 0.4,
               "mean_last10_test_accuracy": 0.35, "wall_seconds": 8.0,
               "train_samples_per_second": 50.0, "epochs": 4, "backend": "jax",
               "backbone": "small_cnn", "train_size": 100, "actual_noise_rate": 0.45}
    (tmp_path / "history.json").write_text(json.dumps(history))
    (tmp_path / "summary.json").write_text(json.dumps(summary))
    row = accuracy.run_row(accuracy.Cell("dividemix", True, "sym:0.5", 0), str(tmp_path))
    assert row["warmup_end"] == 0.3  # the last warm-up epoch is the one before the first split
    assert row["best_epoch"] == 3 and row["train_accuracy"] is None
    assert row["auc"] == pytest.approx(0.7)  # last epoch, mean over both networks


def test_train_arguments_of_each_cell_kind(tmp_path):
    data = str(tmp_path)  # the command line checks that the data folder exists
    budget = accuracy.BUDGETS["cpu"]
    ce = accuracy.train_arguments(budget, accuracy.Cell("ce", False, "sym:0.8", 2), data, "O")
    assert ce[ce.index("--epochs") + 1] == "15" and "--no-sanm" in ce
    assert "--preset" not in ce and "--warmup-epochs" not in ce
    assert ce[ce.index("--seed") + 1] == "2" and ce[ce.index("--train-size") + 1] == "2000"
    dm = accuracy.train_arguments(budget, accuracy.Cell("dividemix", True, "sym:0.8", 0), data, "O")
    assert "--no-sanm" not in dm and dm[dm.index("--preset") + 1] == "cifar10-sym-0.8"
    assert dm[dm.index("--warmup-epochs") + 1] == "4" and dm[dm.index("--epochs") + 1] == "7"
    # A rate without a published cell takes the nearest one of its kind.
    assert [accuracy.nearest_preset(n) for n in ("sym:0.4", "sym:0.3", "asym:0.4", "sym:0.85")] \
        == ["cifar10-sym-0.5", "cifar10-sym-0.2", "cifar10-asym-0.4", "cifar10-sym-0.9"]
    gpu = accuracy.train_arguments(accuracy.BUDGETS["gpu"], accuracy.Cell("ce", True, "sym:0.5", 0),
                                   data, "O")
    assert gpu[gpu.index("--dtype-policy") + 1] == "mixed_bfloat16" and "--train-size" not in gpu
    # The learning rate drops at half of the run (the reference's 150 of 300).
    assert gpu[gpu.index("--lr-drop-epochs") + 1] == "50" and "--lr-drop-epochs" not in ce
    regime = accuracy.BUDGETS["cpu-regime"]
    cells = accuracy.grid(regime, ["ce", "dividemix", "coteaching", "cdr", "elr_plus"])
    arguments = [accuracy.train_arguments(regime, cell, data, "O") for cell in cells]
    for args in arguments:  # the chosen regime, the same for every method
        for flag, value in (("--width", "8"), ("--train-size", "2000"), ("--epochs", "100"),
                            ("--lr-drop-epochs", "50"), ("--backbone", "preact_resnet18"),
                            ("--backend", "tensorflow"), ("--track-fit-every", "10")):
            assert args[args.index(flag) + 1] == value
    # Every argument list parses with the real command line.
    for args in (ce, dm, gpu, *arguments):
        assert cli.build_parser().parse_args(args).command == "train"
    assert len(accuracy.grid(budget, ["ce", "dividemix"])) == 2 * 2 * 3 * 2


def test_ablation_cells_arguments_and_tables(tmp_path):
    data = str(tmp_path)  # the command line checks that the data folder exists
    budget = accuracy.dataclasses.replace(accuracy.BUDGETS["cpu"], width=16, lr_drop_fraction=0.5)
    cells = accuracy.grid(budget, ["ce", "dividemix"], ablation=True)
    assert len(cells) == 2 * 3 * (2 + 2 + 3)
    without = [c for c in cells if c.without and c.seed == 0 and c.noise == "sym:0.5"]
    assert [c.without for c in without] == ["strong_views", "strong_warmup", "masking"]
    assert without[2].name == "dividemix_sanm_without-masking_sym0.5_s0"
    args = accuracy.train_arguments(budget, without[2], data, "O")
    assert args[args.index("--sanm-without") + 1] == "masking"
    assert args[args.index("--width") + 1] == "16"
    assert args[args.index("--lr-drop-epochs") + 1] == "4"  # round(7 * 0.5)
    parsed = cli.build_parser().parse_args(args)
    assert parsed.sanm_without == "masking" and parsed.width == 16
    rows = (_rows("dividemix", False, [0.40, 0.42], [0.30, 0.32])
            + _rows("dividemix", True, [0.50, 0.52], [0.40, 0.42]))
    rows += [{**r, "without": "masking", "best": r["best"] - 0.05} for r in rows if r["sanm"]]
    gains = {g["without"]: g for g in accuracy.gain_rows(rows)}
    assert gains[""]["best_gain"] == pytest.approx(0.10)
    assert gains["masking"]["best_gain"] == pytest.approx(0.05)
    page = accuracy.markdown(rows, "header")
    assert "| DivideMix | yes, without masking | sym:0.5 | 2 | 46.00 ± 1.41 |" in page
    assert "| DivideMix (SANM without masking) | sym:0.5 | 2 | +5.00 (0.00) |" in page


@pytest.mark.slow
@HARNESS_ONLY
def test_grid_runs_writes_tables_and_resumes(tmp_path):
    write_jpeg_npz(tmp_path / "cifar10_jpeg.npz")
    out = tmp_path / "grid"
    argv = ["--budget", "smoke", "--data-dir", str(tmp_path), "--out", str(out),
            "--methods", "ce", "--seeds", "0,1"]
    assert accuracy.main(argv) == 0
    with open(out / "runs.csv") as f:
        runs = list(csv.DictReader(f))
    assert len(runs) == 4
    for run in runs:
        assert 0.0 <= float(run["best"]) <= 1.0 and float(run["best"]) >= float(run["last"])
        assert run["backend"] == keras.backend.backend()
        assert 0.0 <= float(run["train_accuracy"]) <= 1.0
        assert 1 <= int(run["best_epoch"]) <= 2 and run["warmup_end"] == ""
        if run["sanm"] == "True":  # SANM(CE) splits the data by label quality; CE does not
            assert 0.0 <= float(run["auc"]) <= 1.0
        else:
            assert run["auc"] == ""
    for cell in ("ce_sym0.5_s0", "ce_sanm_sym0.5_s1"):
        assert (out / cell / "cifar10_0.5_sym.json").exists()  # the noise file beside the log
        assert "Epoch 2/2" in (out / cell / "train.log").read_text()
    page = (out / "results.md").read_text()
    # The SANM(CE) rows name their targets (the default, refined, is recorded as such).
    assert "Budget `smoke`" in page and "| CE (SANM refined targets on masked copies) | sym:0.5 | 2 |" in page
    with open(out / "results.csv") as f:
        assert len(list(csv.DictReader(f))) == 2

    # A second call reuses finished cells and reruns only the missing one.
    kept = out / "ce_sym0.5_s0" / "summary.json"
    kept_time = os.path.getmtime(kept)
    os.remove(out / "ce_sanm_sym0.5_s1" / "summary.json")
    assert accuracy.main(argv) == 0
    assert os.path.getmtime(kept) == kept_time
    rerun = json.loads((out / "ce_sanm_sym0.5_s1" / "summary.json").read_text())
    assert rerun["seed"] == 1 and rerun["sanm"] is True

    # On another machine only the committed table survives: `--known` takes its
    # rows as they are (with their own commit and date) and trains nothing.
    committed = tmp_path / "committed_runs.csv"
    shutil.copy(out / "runs.csv", committed)
    again = tmp_path / "elsewhere"
    assert accuracy.main(argv[:5] + [str(again)] + argv[6:] + ["--known", str(committed)]) == 0
    assert sorted(os.listdir(again)) == ["results.csv", "results.md", "runs.csv"]
    with open(committed) as f:
        before = list(csv.DictReader(f))
    with open(again / "runs.csv") as f:
        after = list(csv.DictReader(f))
    assert after == before and all(row["date"] and row["commit"] for row in after)
    assert (again / "results.md").read_text().split("\n", 3)[3] == (
        out / "results.md").read_text().split("\n", 3)[3]
    # A table of another budget is refused before anything runs.
    other = accuracy.dataclasses.replace(accuracy.BUDGETS["smoke"], epochs={"ce": 3})
    with pytest.raises(ValueError, match="belongs to another grid"):
        accuracy.known_rows(str(committed), other)


@pytest.mark.slow
@HARNESS_ONLY
def test_grid_halves_run_apart_and_merge_with_known(tmp_path):
    write_jpeg_npz(tmp_path / "cifar10_jpeg.npz")
    base = ["--budget", "smoke", "--data-dir", str(tmp_path), "--methods", "ce", "--seeds", "0"]
    for variant in ("plain", "sanm"):
        assert accuracy.main(base + ["--out", str(tmp_path / variant),
                                     "--variants", variant]) == 0
    assert [d for d in os.listdir(tmp_path / "plain") if d.startswith("ce")] == ["ce_sym0.5_s0"]
    assert [d for d in os.listdir(tmp_path / "sanm") if d.startswith("ce")] == [
        "ce_sanm_sym0.5_s0"]
    halves = [str(tmp_path / variant / "runs.csv") for variant in ("plain", "sanm")]
    merged = tmp_path / "merged"
    assert accuracy.main(base + ["--out", str(merged), "--known", halves[0],
                                 "--known", halves[1]]) == 0
    assert sorted(os.listdir(merged)) == ["results.csv", "results.md", "runs.csv"]  # no training
    with open(merged / "runs.csv") as f:
        assert [(r["method"], r["sanm"]) for r in csv.DictReader(f)] == [
            ("ce", "False"), ("ce", "True")]
    assert "| CE (SANM refined targets on masked copies) | sym:0.5 | 1 |" in (
        merged / "results.md").read_text()  # the gain row
    # --cells keeps only the named cells (here both known: nothing trains).
    only = tmp_path / "only"
    assert accuracy.main(base + ["--out", str(only), "--known", halves[1],
                                 "--cells", "ce_sanm_sym0.5_s0"]) == 0
    with open(only / "runs.csv") as f:
        assert [(r["method"], r["sanm"]) for r in csv.DictReader(f)] == [("ce", "True")]
    with pytest.raises(SystemExit, match=r"--cells: \['ce_sym0.5_s9'\] are not cells"):
        accuracy.main(base + ["--out", str(only), "--cells", "ce_sym0.5_s9"])
    # The same row in two tables (both halves started from one committed
    # table) is one run; another result for a cell already given is refused.
    assert accuracy.main(base + ["--out", str(merged), "--known", halves[0],
                                 "--known", halves[0], "--known", halves[1]]) == 0
    with open(halves[0]) as f:
        rows = list(csv.DictReader(f))
    rows[0]["best"] = "0.999"
    other = tmp_path / "other.csv"
    with open(other, "w", newline="") as f:
        writer = csv.DictWriter(f, fieldnames=list(rows[0]))
        writer.writeheader()
        writer.writerows(rows)
    with pytest.raises(SystemExit, match="also in an earlier --known table with other results"):
        accuracy.main(base + ["--out", str(merged), "--known", halves[0], "--known", str(other)])


def test_ablation_runs_only_the_parts_asked_for(tmp_path):
    budget = accuracy.BUDGETS["cpu-regime"]
    cells = accuracy.grid(budget, ["dividemix"], ["strong_warmup"])
    assert [c.name for c in cells if c.seed == 0 and c.noise == "sym:0.5"] == [
        "dividemix_sym0.5_s0", "dividemix_sanm_sym0.5_s0",
        "dividemix_sanm_without-strong_warmup_sym0.5_s0"]
    assert accuracy.grid(budget, ["dividemix"], True) == accuracy.grid(
        budget, ["dividemix"], list(accuracy.ABLATIONS))
    with pytest.raises(ValueError, match="unknown parts"):
        accuracy.grid(budget, ["dividemix"], ["decoder"])
    with pytest.raises(SystemExit, match="unknown parts"):
        accuracy.main(["--budget", "cpu-regime", "--data-dir", str(tmp_path),
                       "--out", str(tmp_path / "grid"), "--ablation", "masks"])


@pytest.mark.slow
def test_failed_cell_names_its_log(tmp_path):
    bad = tmp_path / "cifar10_jpeg.npz"
    bad.write_bytes(b"not an npz")
    with pytest.raises(RuntimeError, match="ce_sym0.5_s0 failed.*train.log"):
        accuracy.main(["--budget", "smoke", "--data-dir", str(tmp_path), "--out",
                       str(tmp_path / "grid"), "--methods", "ce", "--seeds", "0"])
    with pytest.raises(SystemExit, match="no epochs for"):
        bench(["accuracy", "--budget", "cpu", "--methods", "cdr"])


@pytest.mark.slow
@pytest.mark.parametrize("method", [
    "ce",
    # DivideMix's mixed-precision casts are keras.ops (the backend's own
    # mixed precision is checked by the CE case): on one backend.
    pytest.param("dividemix", marks=pytest.mark.only_backend(
        "torch", reason="backend-independent casts; CE checks each backend")),
])
def test_train_command_dtype_policy(tmp_path, method):
    write_jpeg_npz(tmp_path / "cifar10_jpeg.npz")
    out = tmp_path / "run"
    warmup = ["--warmup-epochs", "1"] if method == "dividemix" else []
    cli.main([
        "train", "--data-dir", str(tmp_path), "--noise", "sym:0.5", "--backbone", "small_cnn",
        "--method", method, "--epochs", "2", *warmup, "--batch-size", "16",
        "--train-size", "32", "--test-size", "16", "--dtype-policy", "mixed_bfloat16",
        "--output", str(out), "--verbose", "0",
    ])
    summary = json.loads((out / "summary.json").read_text())
    assert summary["dtype_policy"] == "mixed_bfloat16" and summary["sanm"] is True
    history = json.loads((out / "history.json").read_text())
    assert all(math.isfinite(v) for v in history["loss"])
    assert summary["output_dtype"] == "bfloat16"  # the network computed in bfloat16
    assert keras.config.dtype_policy().name == "float32"  # the global policy is restored


@pytest.mark.slow
@HARNESS_ONLY
def test_label_targets_cells_run_as_their_own_setting(tmp_path):
    write_jpeg_npz(tmp_path / "cifar10_jpeg.npz")
    budget = accuracy.BUDGETS["cpu-regime"]
    cells = accuracy.grid(budget, ["ce"], masked_targets=["label"])
    label = [c for c in cells if c.masked_targets]
    assert [c.name for c in label][:1] == ["ce_sanm_label-targets_sym0.5_s0"]
    args = accuracy.train_arguments(budget, label[0], str(tmp_path), "out")
    assert args[args.index("--masked-targets") + 1] == "label"
    assert "--masked-targets" not in accuracy.train_arguments(budget, cells[1], "d", "out")
    for wrong in ("soft", "refined"):  # refined is the default cell, not another setting
        with pytest.raises(SystemExit, match="unknown targets"):
            accuracy.main(["--budget", "smoke", "--data-dir", str(tmp_path),
                           "--out", str(tmp_path / "x"), "--masked-targets", wrong])
    # A small grid: the default SANM(CE) cell trains with refined targets and the
    # label cell with the label; each gets its own rows in every table, paired
    # with plain CE for its gain.
    out = tmp_path / "grid"
    assert accuracy.main(["--budget", "smoke", "--data-dir", str(tmp_path), "--out", str(out),
                          "--methods", "ce", "--seeds", "0", "--masked-targets", "label"]) == 0
    for cell, targets in (("ce_sanm_sym0.5_s0", "refined"),
                          ("ce_sanm_label-targets_sym0.5_s0", "label")):
        assert json.loads((out / cell / "summary.json").read_text())["masked_targets"] == targets
    page = (out / "results.md").read_text()
    for targets in ("refined", "label"):
        assert f"| CE | yes, {targets} targets on masked copies | sym:0.5 | 1 |" in page
        assert f"| CE (SANM {targets} targets on masked copies) | sym:0.5 | 1 |" in page
    with open(out / "runs.csv") as f:
        rows = list(csv.DictReader(f))
    assert [r["masked_targets"] for r in rows] == ["", "refined", "label"]
    # The rows name their cells again when read back.
    assert sorted(accuracy.known_rows(str(out / "runs.csv"), accuracy.BUDGETS["smoke"])) == [
        "ce_sanm_label-targets_sym0.5_s0", "ce_sanm_sym0.5_s0", "ce_sym0.5_s0"]
    # Tables written before the column existed (or before refined became the
    # default, with the column empty) are SANM(CE) runs on the label.
    for drop_column in (True, False):
        old = tmp_path / "old.csv"
        with open(old, "w", newline="") as f:
            fields = [k for k in rows[0] if not (drop_column and k == "masked_targets")]
            writer = csv.DictWriter(f, fieldnames=fields, extrasaction="ignore")
            writer.writeheader()
            writer.writerows([{**r, "masked_targets": ""} for r in rows[:2]])
        known = accuracy.known_rows(str(old), accuracy.BUDGETS["smoke"])
        assert sorted(known) == ["ce_sanm_label-targets_sym0.5_s0", "ce_sym0.5_s0"]
        assert known["ce_sanm_label-targets_sym0.5_s0"]["masked_targets"] == "label"


@pytest.mark.slow
@HARNESS_ONLY
def test_a_run_keeps_the_commit_that_started_it(tmp_path):
    write_jpeg_npz(tmp_path / "cifar10_jpeg.npz")
    budget = accuracy.BUDGETS["smoke"]
    cell = accuracy.Cell("ce", False, "sym:0.5", 0)
    run_dir = tmp_path / "grid" / cell.name
    run_dir.mkdir(parents=True)
    # A run started under other code (killed before it finished) and resumed now.
    (run_dir / "provenance.json").write_text(json.dumps(
        {"commit": "0000000", "device": "x", "date": "2026-01-01"}))
    row = accuracy.run_cell(budget, cell, str(tmp_path), str(tmp_path / "grid"))
    assert row["commit"].startswith("0000000 (resumed at ") and row["date"] == "2026-01-01"
    # The machine that resumed it is named too (its vector width changes the rounding).
    assert row["device"] == f"x (resumed on {accuracy.run_provenance()['device']})"
    fresh = accuracy.run_cell(budget, accuracy.Cell("ce", False, "sym:0.5", 1), str(tmp_path),
                              str(tmp_path / "grid"))
    assert fresh["commit"] == accuracy.run_provenance()["commit"]
    assert fresh["device"] == accuracy.run_provenance()["device"]
    assert accuracy.cpu_text() in fresh["device"]


@HARNESS_ONLY
def test_pretrained_start_cells_pair_only_with_their_own_start():
    from benchmarks.harness.accuracy import BUDGETS, Cell, gain_rows, markdown, train_arguments

    budget = BUDGETS["cpu-regime"]
    cell = Cell("dividemix", True, "sym:0.5", 1, start="simclr")
    assert cell.name == "dividemix_sanm_simclr-start_sym0.5_s1"
    args = train_arguments(budget, cell, "data", "out", init="pre/simclr_s{seed}")
    assert args[args.index("--init") + 1] == "pre/simclr_s1"
    with pytest.raises(ValueError, match="--init"):
        train_arguments(budget, cell, "data", "out")
    assert "--init" not in train_arguments(budget, Cell("ce", False, "sym:0.5", 1), "d", "o")

    def row(sanm, start, seed, best):
        return {"method": "ce", "sanm": sanm, "without": "", "masked_targets": "",
                "start": start, "noise": "sym:0.5", "seed": seed, "best": best,
                "last": best, "last10": best, "best_epoch": 1, "warmup_end": None,
                "wall_s": 1.0, "images_per_s": 1.0, "auc": None, "train_accuracy": None,
                "memorised": None, "memorised_curve": "{}", "epochs": 100}

    rows = [row(False, "", s, 0.30) for s in (0, 1)] + [row(True, "", s, 0.31) for s in (0, 1)]
    rows += [row(False, "simclr", s, 0.40) for s in (0, 1)]
    rows += [row(True, "simclr", s, 0.45 + s / 100) for s in (0, 1)]
    gains = {g["start"]: g for g in gain_rows(rows)}
    assert gains[""]["best_gain"] == pytest.approx(0.01)
    assert gains["simclr"]["best_gain"] == pytest.approx(0.055)
    page = markdown(rows, "header")
    assert "| CE (SimCLR start) | yes | sym:0.5 | 2 |" in page
    assert "| CE (SimCLR start) | sym:0.5 | 2 | +5.50" in page
