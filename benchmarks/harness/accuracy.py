"""Accuracy grid on CIFAR-10: {method} x {SANM off/on} x {noise} x {seed}.

Every cell is one `keras-sanm train` run in its own subprocess (so the backend
is chosen per run and a crash loses one cell, not the grid). A cell whose
`summary.json` exists is reused, so an interrupted grid continues where it
stopped when the same command is run again. At the end the script writes:

* `<out>/runs.csv`: one row per run (best and last test accuracy, mean of the
  last 10 epochs, the last epoch's accuracy on the noisy training labels,
  fit wall time, dataset images/s (epochs x training images / fit time),
  the clean/noisy detection AUC of the last epoch where the method splits
  the data);
* `<out>/results.md` and `<out>/results.csv`: mean +- std over seeds per
  (method, SANM, noise), and the paired SANM gain per (method, noise) with
  the verdict "SANM gain > spread" (the rule is in `gain_rows`).

Named budgets (`BUDGETS`):

* `cpu`: about an hour on a 2-core CPU (PyTorch backend, SmallCNN, 2,000
  training / 2,000 test images, 50% and 80% symmetric noise, 3 seeds;
  CE 15 epochs; DivideMix 4 warm-up + 3 training epochs).
* `gpu`: PreAct ResNet-18 on full CIFAR-10 at 50% symmetric noise, mixed
  precision, CE vs SANM(CE) and DivideMix vs SANM(DivideMix).
* `cpu-regime`: the memorisation regime (TensorFlow backend, PreAct
  ResNet-18 of width 8, 2,000 training / 2,000 test images, 100 epochs with
  the learning rate /10 at 50, 50% and 80% symmetric noise, seeds 0 and 1;
  DivideMix warms up 10 epochs). CE fits wrong labels there and loses test
  accuracy for it; a CE run takes about 6 minutes on 2 CPU cores.
* `cpu-memorization`: a diagnosis: CE vs SANM(CE) for 60 epochs on 1,000
  images at 50% noise, one seed (long enough for CE to fit wrong labels).
* `smoke`: a few seconds per cell, for tests.

    python -m benchmarks accuracy --budget cpu --data-dir ../shared/data/cifar10 --out results/cpu
    python -m benchmarks accuracy --budget gpu --data-dir ../shared/data/cifar10 --out results/gpu
    python -m benchmarks accuracy --budget cpu --seeds 0 --noises sym:0.5 --methods ce   # a slice
"""

from __future__ import annotations

import argparse
import csv
import dataclasses
import datetime
import json
import os
import platform
import statistics
import subprocess
import sys
import time
from collections.abc import Sequence

from keras_sanm import methods as method_specs  # their declarations import no Keras
from keras_sanm.methods.dividemix import WARMUP_AUGMENTS
from keras_sanm.methods.spec import MASKED_TARGETS, MASKED_TARGETS_BEFORE_THE_OPTION

METHOD_LABELS = {name: method_specs.get(name).label for name in method_specs.names()}


@dataclasses.dataclass(frozen=True)
class Budget:
    """One named accuracy budget.

    Attributes:
        backend: Keras backend of every run.
        backbone: `keras_sanm.backbones` name.
        train_size, test_size: CIFAR-10 subset sizes (`None`: all).
        noises: `MODE:RATE` noise settings.
        seeds: one run per seed (subset draw, initialisation, shuffling).
        epochs: epochs per method.
        warmup_epochs: warm-up epochs per method (DivideMix).
        batch_size: training batch size.
        dtype_policy: Keras dtype policy, e.g. `mixed_bfloat16`.
        width: base channels of `preact_resnet18` (`None`: 64).
        lr_drop_fraction: the learning rate is divided by 10 from this
            fraction of each run's epochs, the same epoch for every method
            (`None`: each method's reference drops scaled to its epochs).
        track_fit_every: also measure the fit of correct and wrong training
            labels every this many epochs (`None`: after the last only).
    """

    backend: str
    backbone: str
    train_size: int | None
    test_size: int | None
    noises: tuple[str, ...]
    seeds: tuple[int, ...]
    epochs: dict
    warmup_epochs: dict
    batch_size: int = 64
    dtype_policy: str | None = None
    width: int | None = None
    lr_drop_fraction: float | None = None
    track_fit_every: int | None = None

    def drop_epoch(self, method: str) -> int | None:
        """The epoch of the learning-rate drop of `method`'s runs (or `None`)."""
        if self.lr_drop_fraction is None:
            return None
        return max(1, round(self.epochs[method] * self.lr_drop_fraction))


BUDGETS = {
    "cpu": Budget(
        backend="torch", backbone="small_cnn", train_size=2000, test_size=2000,
        noises=("sym:0.5", "sym:0.8"), seeds=(0, 1, 2),
        epochs={"ce": 15, "dividemix": 7}, warmup_epochs={"dividemix": 4},
    ),
    # Diagnosis, not a result: does CE start fitting the wrong labels within a
    # CPU budget, and does SANM(CE) hold up better once it does?
    "cpu-memorization": Budget(
        backend="torch", backbone="small_cnn", train_size=1000, test_size=2000,
        noises=("sym:0.5",), seeds=(0,), epochs={"ce": 60}, warmup_epochs={},
    ),
    # The memorisation regime chosen by `python -m benchmarks regime` with CE alone
    # (docs/results.md): the cheapest candidate where CE fits wrong labels and
    # loses accuracy for it on both seeds. Fixed before any SANM run.
    "cpu-regime": Budget(
        backend="tensorflow", backbone="preact_resnet18", train_size=2000, test_size=2000,
        noises=("sym:0.5", "sym:0.8"), seeds=(0, 1),
        epochs=dict.fromkeys(method_specs.names(), 100),
        warmup_epochs={"dividemix": 10}, width=8, lr_drop_fraction=0.5, track_fit_every=10,
    ),
    "gpu": Budget(
        backend="jax", backbone="preact_resnet18", train_size=None, test_size=None,
        noises=("sym:0.5",), seeds=(0, 1, 2),
        epochs={"ce": 100, "dividemix": 100}, warmup_epochs={"dividemix": 10},
        dtype_policy="mixed_bfloat16", lr_drop_fraction=0.5,
    ),
    "smoke": Budget(
        backend=os.environ.get("KERAS_BACKEND", "torch"), backbone="small_cnn",
        train_size=96, test_size=40, noises=("sym:0.5",), seeds=(0, 1),
        epochs=dict.fromkeys(method_specs.names(), 2), warmup_epochs={"dividemix": 1},
        batch_size=16,
    ),
}


@dataclasses.dataclass(frozen=True)
class Cell:
    """One run of the grid.

    Attributes:
        method: training method.
        sanm: with SANM.
        noise: `MODE:RATE`.
        seed: subset, noise, initialisation and order seed.
        without: SANM(DivideMix) parts switched off (an ablation), as the
            sorted comma-separated `--sanm-without` value; `""` for none.
        masked_targets: the masked copies' targets of a SANM version that
            takes them (`--masked-targets`); `""` for the default
            (`"refined"`, `keras_sanm.methods.spec.MASKED_TARGETS`).
        start: the base network's start: `""` random weights, `"simclr"`
            a `keras-sanm pretrain` of the seed (`--init`).
        warmup: SANM(DivideMix)'s warm-up augmentation as an arm
            (`--warmup-augment`); `""` for the default (`"strong_warmup"`).
    """

    method: str
    sanm: bool
    noise: str
    seed: int
    without: str = ""
    masked_targets: str = ""
    start: str = ""
    warmup: str = ""

    @property
    def name(self) -> str:
        ablation = f"_without-{self.without.replace(',', '-')}" if self.without else ""
        targets = f"_{self.masked_targets}-targets" if self.masked_targets else ""
        start = f"_{self.start}-start" if self.start else ""
        warmup = f"_{self.warmup}-warmup" if self.warmup else ""
        return (f"{self.method}{'_sanm' if self.sanm else ''}{ablation}{targets}{warmup}{start}_"
                f"{self.noise.replace(':', '')}_s{self.seed}")


# SANM ablation: each part of a method that declares parts left out in turn
# (`keras-sanm train --sanm-without`; SANM(DivideMix)'s).
ABLATIONS = tuple(dict.fromkeys(
    part for name in method_specs.names() for part in method_specs.get(name).sanm_parts))
# Targets of the masked copies other than the default (the refined label) of
# the SANM versions that take them (`keras-sanm train --masked-targets`).
OTHER_MASKED_TARGETS = MASKED_TARGETS[1:]
# SANM(DivideMix)'s warm-up augmentations other than the default, as arms.
OTHER_WARMUPS = WARMUP_AUGMENTS[1:]


def grid(budget: Budget, methods, ablation: bool | Sequence[str] = False,
         masked_targets: Sequence[str] = (), start: str = "",
         warmups: Sequence[str] = ()) -> list[Cell]:
    """All cells, plain before SANM, in (noise, seed, method) order.

    Args:
        budget: the grid's settings (noises, seeds).
        methods: method names, each run plain and with SANM.
        ablation: `True` gives DivideMix also SANM(DivideMix) with each of
            its parts (`ABLATIONS`) left out in turn; a sequence of part
            names gives only those cells.
        masked_targets: a method whose SANM version takes `masked_targets`
            (CE, ...) also gets it with each of these targets of the masked
            copies (e.g. `["label"]`) besides the default.
        start: every cell's start (`Cell.start`).
        warmups: DivideMix also gets SANM(DivideMix) with each of these
            warm-up augmentations (`OTHER_WARMUPS`).

    Returns:
        The cells in run order.
    """
    parts = ABLATIONS if ablation is True else tuple(ablation or ())
    for given, known, what in ((parts, ABLATIONS, "parts"),
                               (masked_targets, OTHER_MASKED_TARGETS, "targets"),
                               (warmups, OTHER_WARMUPS, "warm-ups")):
        unknown = [p for p in given if p not in known]
        if unknown:
            raise ValueError(f"unknown {what} {unknown}; choose from {known}.")
    cells = []
    for n in budget.noises:
        for seed in budget.seeds:
            for m in methods:
                spec = method_specs.get(m)
                cells += [Cell(m, False, n, seed), Cell(m, True, n, seed)]
                cells += [Cell(m, True, n, seed, part) for part in parts
                          if part in spec.sanm_parts]
                if spec.masked_targets:
                    cells += [Cell(m, True, n, seed, masked_targets=t) for t in masked_targets]
                if m == "dividemix":
                    cells += [Cell(m, True, n, seed, warmup=w) for w in warmups]
    return [dataclasses.replace(cell, start=start) for cell in cells]


def train_arguments(budget: Budget, cell: Cell, data_dir: str, out_dir: str,
                    init: str | None = None) -> list[str]:
    """The `keras-sanm train` arguments of one cell.

    `init`: for a cell with a pretrained start, its `--init` folder, where
    `{seed}` stands for the cell's seed.
    """
    args = ["train", "--dataset", "cifar10", "--data-dir", data_dir, "--noise", cell.noise,
            "--method", cell.method, "--backbone", budget.backbone,
            "--epochs", str(budget.epochs[cell.method]), "--batch-size", str(budget.batch_size),
            "--seed", str(cell.seed), "--output", out_dir, "--backend", budget.backend,
            "--verbose", "2", "--resume"]  # a cell killed mid-run continues from its checkpoint
    if not cell.sanm:
        args.append("--no-sanm")
    if cell.without:
        args += ["--sanm-without", cell.without]
    if cell.masked_targets:
        args += ["--masked-targets", cell.masked_targets]
    if cell.warmup:
        args += ["--warmup-augment", cell.warmup]
    if cell.start:
        if not init:
            raise ValueError(f"{cell.name} starts from a pretraining: give its --init folder.")
        args += ["--init", init.format(seed=cell.seed)]
    if cell.method in budget.warmup_epochs:
        args += ["--warmup-epochs", str(budget.warmup_epochs[cell.method])]
    if method_specs.get(cell.method).preset_by_noise:  # DivideMix's lambda_u, ...
        args += ["--preset", nearest_preset(cell.noise)]
    for flag, value in (("--train-size", budget.train_size), ("--test-size", budget.test_size),
                        ("--dtype-policy", budget.dtype_policy), ("--width", budget.width),
                        ("--lr-drop-epochs", budget.drop_epoch(cell.method)),
                        ("--track-fit-every", budget.track_fit_every)):
        if value is not None:
            args += [flag, str(value)]
    return args


def nearest_preset(noise: str) -> str:
    """The CIFAR-10 preset of a noise setting (`sym:0.5` -> `cifar10-sym-0.5`).

    A rate without a published cell takes the nearest one of the same kind
    (the larger rate on a tie): `sym:0.4` runs with `cifar10-sym-0.5`, whose
    `lambda_u` (25) also serves the paper's 50% and 80% cells.
    """
    from keras_sanm.presets import CELLS

    mode, rate = noise.split(":")
    rates = [float(kind.split("-")[1]) for dataset, kind in CELLS
             if dataset == "cifar10" and kind.startswith(f"{mode}-")]
    if not rates:
        raise ValueError(f"No CIFAR-10 preset has {mode} noise.")
    chosen = min(rates, key=lambda r: (round(abs(r - float(rate)), 9), -r))
    return f"cifar10-{mode}-{chosen}"


def _summary_targets(cell: Cell, summary: dict) -> str:
    """The masked copies' targets a finished run trained with (`""` where it has none)."""
    if not (cell.sanm and method_specs.get(cell.method).masked_targets):
        return ""
    return summary.get("masked_targets") or MASKED_TARGETS_BEFORE_THE_OPTION


def run_row(cell: Cell, run_dir: str) -> dict:
    """One CSV row from a finished run's `summary.json` and `history.json`."""
    with open(os.path.join(run_dir, "summary.json")) as f:
        summary = json.load(f)
    with open(os.path.join(run_dir, "history.json")) as f:
        history = json.load(f)
    aucs = [values[-1] for key, values in history.items()
            if key.startswith("noise_auc") and values]
    # Accuracy on the noisy training labels (inference mode, no augmentation,
    # after the last epoch): above the fraction of correct labels means the
    # network fits wrong labels. Older runs have the training-mode running
    # accuracy of the last epoch instead (DivideMix: none).
    train_accuracy = summary.get("fit_noisy_labels",
                                 history.get("accuracy", [float("nan")])[-1])
    test_accuracy = history["val_accuracy"]
    # DivideMix logs its labeled-set size from the first epoch after warm-up.
    split = history.get("labeled_1")
    warmup = next((i for i, v in enumerate(split) if v == v), None) if split else None
    return {
        "method": cell.method, "sanm": cell.sanm, "without": cell.without,
        # The targets the run used, as its summary records them (runs from
        # before the refined default recorded none: they trained on the label).
        "masked_targets": _summary_targets(cell, summary),
        # "simclr": the run's base started from a `keras-sanm pretrain` (`--init`).
        "start": "simclr" if summary.get("init") else "",
        "warmup": cell.warmup,
        "noise": cell.noise, "seed": cell.seed,
        "best": summary["best_test_accuracy"], "last": summary["last_test_accuracy"],
        "last10": summary["mean_last10_test_accuracy"],
        "best_epoch": 1 + max(range(len(test_accuracy)), key=test_accuracy.__getitem__),
        "warmup_end": test_accuracy[warmup - 1] if warmup else None,
        "wall_s": summary["wall_seconds"],
        "images_per_s": summary["train_samples_per_second"],
        "auc": statistics.fmean(aucs) if aucs else None,
        "train_accuracy": None if train_accuracy != train_accuracy else train_accuracy,
        "memorised": summary.get("memorised_wrong_labels"),
        # {epoch: share of wrong labels memorised} where it was measured
        # (`track_fit_every`), as JSON so the CSV keeps it.
        "memorised_curve": json.dumps({
            i + 1: v for i, v in enumerate(history.get("memorised_wrong_labels", []))
            if v == v}),
        "correct_fraction": 1.0 - summary["actual_noise_rate"],
        "epochs": summary["epochs"], "backend": summary["backend"],
        "backbone": summary["backbone"], "train_size": summary["train_size"],
        "actual_noise_rate": summary["actual_noise_rate"],
        **_read_provenance(run_dir),
    }


def _read_provenance(run_dir: str) -> dict:
    path = os.path.join(run_dir, "provenance.json")
    if not os.path.exists(path):
        return {"commit": "", "device": "", "date": ""}
    with open(path) as f:
        found = json.load(f)
    commit, device = found.get("commit", ""), found.get("device", "")
    if found.get("resumed_commit"):
        commit += f" (resumed at {found['resumed_commit']})"
    if found.get("resumed_device"):
        device += f" (resumed on {found['resumed_device']})"
    return {"commit": commit, "device": device, "date": found.get("date", "")}


def run_cell(budget: Budget, cell: Cell, data_dir: str, out: str,
             init: str | None = None) -> dict:
    """Runs one cell unless its summary exists; returns its row (`init`: see
    `train_arguments`)."""
    run_dir = os.path.join(out, cell.name)
    if not os.path.exists(os.path.join(run_dir, "summary.json")):
        os.makedirs(run_dir, exist_ok=True)
        # The code that starts a run is its provenance; a run resumed under
        # other code keeps the first commit and adds the last one.
        path = os.path.join(run_dir, "provenance.json")
        here = run_provenance()
        if os.path.exists(path):
            with open(path) as f:
                first = json.load(f)
            for key in ("commit", "device"):
                if first.get(key) != here[key]:
                    first[f"resumed_{key}"] = here[key]
            here = first
        with open(path, "w") as f:
            json.dump(here, f)
        command = [sys.executable, "-m", "keras_sanm.cli",
                   *train_arguments(budget, cell, data_dir, run_dir, init)]
        with open(os.path.join(run_dir, "train.log"), "a") as log:
            code = subprocess.run(command, stdout=log, stderr=subprocess.STDOUT).returncode
        if code:
            raise RuntimeError(f"{cell.name} failed (exit {code}); see {run_dir}/train.log")
    row = run_row(cell, run_dir)
    expected = _cell_targets(cell)
    if row["masked_targets"] != expected:
        # A folder of the default cell run (or started) while the label was the default.
        raise RuntimeError(
            f"{run_dir} holds a run whose masked copies trained on {row['masked_targets']!r} "
            f"targets, but the cell {cell.name} stands for {expected!r} ones (the default "
            "changed). Move the folder to the cell "
            f"{dataclasses.replace(cell, masked_targets=row['masked_targets']).name} "
            "(run the grid with --masked-targets label to include it), or delete it.")
    return row


def _cell_targets(cell: Cell) -> str:
    """The masked copies' targets a cell's run trains with (`""` where it has none)."""
    if not (cell.sanm and method_specs.get(cell.method).masked_targets):
        return ""
    return cell.masked_targets or MASKED_TARGETS[0]


# Columns of a run row that `known_rows` reads back as text whatever they hold.
_TEXT_COLUMNS = ("method", "without", "masked_targets", "start", "warmup", "noise", "backend",
                 "backbone",
                 "commit",
                 "device", "date",
                 "memorised_curve")


def _from_csv(key: str, value: str):
    if key in _TEXT_COLUMNS:
        return value
    if value == "":
        return None
    if value in ("True", "False"):
        return value == "True"
    for kind in (int, float):
        try:
            return kind(value)
        except ValueError:
            pass
    return value


def known_rows(path: str, budget: Budget) -> dict[str, dict]:
    """Finished runs from an earlier `runs.csv` (e.g. a committed table), by cell name.

    A grid may span machines that keep nothing but committed tables; the
    rows of this file stand for their cells, which are not run again. Every
    row must come from `budget` (backend, backbone, sizes, epochs), or this
    raises `ValueError` rather than mix regimes in one table.
    """
    with open(path, newline="") as f:
        rows = [{k: _from_csv(k, v) for k, v in row.items()} for row in csv.DictReader(f)]
    known = {}
    for row in rows:
        targets = row.get("masked_targets") or ""
        if row["sanm"] and method_specs.get(row["method"]).masked_targets:
            # Rows from before the option's default became "refined" trained on the label.
            targets = targets or MASKED_TARGETS_BEFORE_THE_OPTION
        row["masked_targets"] = targets
        row["start"], row["warmup"] = row.get("start") or "", row.get("warmup") or ""
        cell = Cell(row["method"], row["sanm"], row["noise"], row["seed"], row["without"] or "",
                    "" if targets == MASKED_TARGETS[0] else targets, row["start"], row["warmup"])
        expected = {"backend": budget.backend, "backbone": budget.backbone,
                    "train_size": budget.train_size, "epochs": budget.epochs.get(cell.method)}
        found = {key: row.get(key) for key in expected}
        if budget.train_size is None:
            expected.pop("train_size"), found.pop("train_size")
        if found != expected:
            raise ValueError(f"{path}: run {cell.name} has {found}, but the budget has "
                             f"{expected}; it belongs to another grid.")
        known[cell.name] = row
    return known


def _row_text(row: dict) -> str:
    """A row as text, so rows with NaN fields compare equal to their copies."""
    return json.dumps(row, sort_keys=True, default=str)


# What sets a run apart beyond method, SANM and noise (`_variant`).
VARIANT_FIELDS = ("without", "masked_targets", "warmup", "start")


def _variant(row: dict) -> tuple[str, ...]:
    """The row's `VARIANT_FIELDS` values (`""` where unset)."""
    return tuple(row.get(field) or "" for field in VARIANT_FIELDS)


def _mean_std(values) -> tuple[float, float]:
    values = [v for v in values if v is not None]
    if not values:
        return float("nan"), float("nan")
    return statistics.fmean(values), statistics.stdev(values) if len(values) > 1 else 0.0


def summary_rows(rows: list[dict]) -> list[dict]:
    """Mean and sample std over seeds per (method, sanm, noise)."""
    groups: dict = {}
    for row in rows:
        key = (row["method"], row["sanm"], _variant(row), row["noise"])
        groups.setdefault(key, []).append(row)
    out = []
    for (method, sanm, variant, noise), group in groups.items():
        entry = {"method": method, "sanm": sanm, **dict(zip(VARIANT_FIELDS, variant)),
                 "noise": noise,
                 "seeds": len(group),
                 "epochs": max(r.get("epochs", 0) for r in group)}
        for key in ("best", "last", "last10", "best_epoch", "train_accuracy", "memorised", "warmup_end",
                    "wall_s", "images_per_s", "auc"):
            entry[f"{key}_mean"], entry[f"{key}_std"] = _mean_std(r[key] for r in group)
        out.append(entry)
    return out


def gain_rows(rows: list[dict]) -> list[dict]:
    """SANM minus plain per (method, noise), for best and last accuracy.

    The gain counts ("gain > spread") when the mean SANM accuracy exceeds the
    mean plain accuracy by more than the larger of the two seed-to-seed
    standard deviations. The paired gain (same seed: same subset, noisy
    labels and initial weights) is reported as mean +- std.
    """
    # A SANM run pairs with the plain run of its seed and start.
    plain = {(r["method"], r["noise"], r["seed"], r.get("start") or ""): r
             for r in rows if not r["sanm"]}
    pairs: dict = {}
    for row in rows:
        key = (row["method"], row["noise"], row["seed"], row.get("start") or "")
        if row["sanm"] and key in plain:
            group = (row["method"], _variant(row), row["noise"])
            pairs.setdefault(group, []).append((plain[key], row))
    out = []
    for (method, variant, noise), group in pairs.items():
        entry = {"method": method, **dict(zip(VARIANT_FIELDS, variant)), "noise": noise,
                 "seeds": len(group)}
        for key in ("best", "last"):
            plain_mean, plain_std = _mean_std(p[key] for p, _ in group)
            sanm_mean, sanm_std = _mean_std(s[key] for _, s in group)
            entry[f"{key}_gain"] = sanm_mean - plain_mean
            entry[f"{key}_paired_std"] = _mean_std(s[key] - p[key] for p, s in group)[1]
            entry[f"{key}_spread"] = max(plain_std, sanm_std)
            entry[f"{key}_beats_spread"] = len(group) > 1 and (
                entry[f"{key}_gain"] > entry[f"{key}_spread"])
        out.append(entry)
    return out


def _sanm_label(entry: dict) -> str:
    if not entry.get("sanm", True):
        return "no"
    if entry.get("without"):
        return "yes, without " + " and ".join(p.replace("_", " ") for p in entry["without"].split(","))
    if entry.get("masked_targets"):
        return f"yes, {entry['masked_targets']} targets on masked copies"
    if entry.get("warmup"):
        return f"yes, {entry['warmup'].replace('_', ' ')} warm-up"
    return "yes"


def _method_label(entry: dict) -> str:
    """The method's name, with its start where it is not random weights."""
    label = METHOD_LABELS[entry["method"]]
    return label + (" (SimCLR start)" if entry.get("start") == "simclr" else "")


def count_text(value) -> str:
    """A count rounded to a whole number; "–" where not recorded (None or NaN)."""
    return "–" if value is None or value != value else f"{value:.0f}"


def _pct(mean, std) -> str:
    if mean != mean:  # NaN: not measured
        return "–"
    return f"{100 * mean:.2f} ± {100 * std:.2f}"


def markdown(rows: list[dict], header: str) -> str:
    """The results page: provenance header, per-setting table, gain table."""
    lines = [header, "",
             "| method | SANM | noise | seeds | best acc % | last acc % | mean of last 10 % | "
             "epoch of best | train acc on noisy labels % | wrong labels memorised % | "
             "acc at end of warm-up % | detection AUC | wall time (s) | train img/s |",
             "| --- | --- | --- | --- | --- | --- | --- | --- | --- | --- | --- | --- | --- | --- |"]
    for s in summary_rows(rows):
        auc = "–" if s["auc_mean"] != s["auc_mean"] else f"{s['auc_mean']:.3f} ± {s['auc_std']:.3f}"
        lines.append(
            f"| {_method_label(s)} | {_sanm_label(s)} | {s['noise']} | "
            f"{s['seeds']} | {_pct(s['best_mean'], s['best_std'])} | "
            f"{_pct(s['last_mean'], s['last_std'])} | {_pct(s['last10_mean'], s['last10_std'])} | "
            f"{s['best_epoch_mean']:.1f} / {s['epochs']} | "
            f"{_pct(s['train_accuracy_mean'], s['train_accuracy_std'])} | "
            f"{_pct(s['memorised_mean'], s['memorised_std'])} | "
            f"{_pct(s['warmup_end_mean'], s['warmup_end_std'])} | {auc} | "
            f"{count_text(s['wall_s_mean'])} | {count_text(s['images_per_s_mean'])} |")
    lines += curve_lines(rows)
    lines += ["", "SANM gain (percentage points; spread = the larger seed-to-seed std):", "",
              "| method | noise | seeds | best: gain (paired std) | best: spread | best: gain > spread | "
              "last: gain (paired std) | last: spread | last: gain > spread |",
              "| --- | --- | --- | --- | --- | --- | --- | --- | --- |"]
    for g in gain_rows(rows):
        cells = []
        for key in ("best", "last"):
            cells += [f"{100 * g[f'{key}_gain']:+.2f} ({100 * g[f'{key}_paired_std']:.2f})",
                      f"{100 * g[f'{key}_spread']:.2f}",
                      "yes" if g[f"{key}_beats_spread"] else "no"]
        label = _method_label(g) + (
            f" (SANM {_sanm_label(g)[5:]})" if any(_variant(g)[:3]) else "")
        lines.append(f"| {label} | {g['noise']} | {g['seeds']} | " + " | ".join(cells) + " |")
    return "\n".join(lines) + "\n"


def curve_lines(rows: list[dict]) -> list[str]:
    """Markdown table of the wrong labels memorised over the epochs (mean over seeds).

    Only epochs measured in every run of a setting (`track_fit_every`);
    nothing when no run measured more than its last epoch.
    """
    groups: dict = {}
    for row in rows:
        curve = json.loads(row.get("memorised_curve") or "{}")
        key = (row["method"], row["sanm"], _variant(row), row["noise"])
        groups.setdefault(key, []).append({int(e): v for e, v in curve.items()})
    shared = {key: sorted(set.intersection(*(set(c) for c in curves)))
              for key, curves in groups.items()}
    epochs = sorted({e for value in shared.values() for e in value})
    if len(epochs) < 2:
        return []
    lines = ["", "Wrong labels memorised (%) after each measured epoch, mean over seeds:", "",
             "| method | SANM | noise | seeds | " + " | ".join(str(e) for e in epochs) + " |",
             "|" + " --- |" * (4 + len(epochs))]
    for (method, sanm, variant, noise), curves in groups.items():
        cells = [f"{100 * statistics.fmean(c[e] for c in curves):.1f}"
                 if e in shared[(method, sanm, variant, noise)] else "–"
                 for e in epochs]
        entry = {"method": method, "sanm": sanm, **dict(zip(VARIANT_FIELDS, variant))}
        label, method_label = _sanm_label(entry), _method_label(entry)
        lines.append(f"| {method_label} | {label} | {noise} | {len(curves)} | "
                     + " | ".join(cells) + " |")
    return lines


def _write_csv(path: str, rows: list[dict]) -> None:
    with open(path, "w", newline="") as f:
        fields = list(dict.fromkeys(key for row in rows for key in row))
        writer = csv.DictWriter(f, fieldnames=fields, restval="")
        writer.writeheader()
        writer.writerows(rows)


def cpu_text() -> str:
    """The processor kind and its widest vector instructions (e.g. `x86_64 AVX-512`).

    The vector width picks the CPU kernels (oneDNN, XLA), so the same run on
    an AVX2 and an AVX-512 machine rounds differently and, over many steps,
    can take another course; a run's row says which it had.
    """
    kind = platform.processor() or platform.machine()
    try:
        with open("/proc/cpuinfo") as f:
            flags = next((line.split(":", 1)[1].split() for line in f
                          if line.startswith("flags")), [])
    except OSError:
        return kind
    widest = next((name for flag, name in (("avx512f", "AVX-512"), ("avx2", "AVX2"),
                                           ("avx", "AVX")) if flag in flags), "")
    return f"{kind} {widest}".strip()


def run_provenance() -> dict[str, str]:
    """The commit, device and date of work done now (one row or one page)."""
    try:
        commit = subprocess.run(["git", "rev-parse", "--short", "HEAD"], capture_output=True,
                                text=True, cwd=os.path.dirname(os.path.abspath(__file__))).stdout.strip()
    except OSError:
        commit = ""
    device = f"{cpu_text()}, {os.cpu_count()} cores"
    try:
        gpu = subprocess.run(["nvidia-smi", "--query-gpu=name", "--format=csv,noheader"],
                             capture_output=True, text=True).stdout.strip()
        device = gpu or device
    except OSError:
        pass
    return {"commit": commit or "unknown", "device": device,
            "date": datetime.date.today().isoformat()}


def provenance(command: str, budget_name: str, budget: Budget) -> str:
    """Command, commit, backend, device and date of a results page."""
    here = run_provenance()
    commit, device = here["commit"], here["device"]
    return (f"Budget `{budget_name}`: backend {budget.backend}, backbone {budget.backbone}, "
            f"train {budget.train_size or 'all'} / test {budget.test_size or 'all'} images, "
            f"epochs {budget.epochs}, warm-up {budget.warmup_epochs}, batch {budget.batch_size}, "
            f"dtype policy {budget.dtype_policy or 'float32'}.\n\n"
            f"Command: `{command}`  \nCommit: {commit}; device: {device}; "
            f"date: {here['date']}. Rows reused from an earlier table keep their own "
            f"commit, device and date in `runs.csv`.")


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(prog="python -m benchmarks accuracy", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--budget", default="cpu", choices=sorted(BUDGETS),
                        help="named grid (see above; default: cpu)")
    parser.add_argument("--data-dir", default="../shared/data/cifar10",
                        help="folder with cifar10_jpeg.npz (default: ../shared/data/cifar10)")
    parser.add_argument("--out", default=None, help="results folder (default results/<budget>)")
    parser.add_argument("--methods", default="ce,dividemix",
                        help="comma-separated methods, each plain and with SANM "
                             "(default: ce,dividemix)")
    parser.add_argument("--noises", default=None, help="override, e.g. sym:0.5,sym:0.8")
    parser.add_argument("--seeds", default=None, help="override, e.g. 0,1,2")
    parser.add_argument("--backend", default=None, help="override the budget's backend")
    parser.add_argument("--known", action="append", default=[],
                        help="an earlier runs.csv of this budget (e.g. a committed table): "
                             "its cells are taken from it and not run again; repeat it to "
                             "merge tables (a cell in two tables is refused)")
    parser.add_argument("--ablation", nargs="?", const=",".join(ABLATIONS), default="",
                        metavar="PARTS",
                        help="DivideMix: also SANM(DivideMix) with each of its parts left "
                             "out in turn; give a comma-separated subset of "
                             f"{', '.join(ABLATIONS)} to run only those cells (default: all)")
    parser.add_argument("--masked-targets", default="", metavar="TARGETS",
                        help=", ".join(METHOD_LABELS[m] for m in method_specs.names()
                                       if method_specs.get(m).masked_targets)
                             + ": also their SANM version with these comma-separated targets "
                               "of the masked copies besides the default refined label "
                               "(e.g. label)")
    parser.add_argument("--variants", default="both", choices=("both", "plain", "sanm"),
                        help="run only the plain or only the SANM cells (e.g. the two halves "
                             "of a grid as two processes with separate --out folders)")
    parser.add_argument("--warmup-augments", default="", metavar="WARMUPS",
                        help="DivideMix: also SANM(DivideMix) with each of these comma-separated "
                             f"warm-up augmentations ({', '.join(OTHER_WARMUPS)}) besides the "
                             "default strong_warmup")
    parser.add_argument("--init", default=None, metavar="FOLDER",
                        help="every cell starts from a keras-sanm pretrain folder of its seed "
                             "('{seed}' in FOLDER stands for it, e.g. results/simclr_s{seed}); "
                             "the cells are named ..._simclr-start_...")
    parser.add_argument("--cells", default="", metavar="NAMES",
                        help="run only these comma-separated cells of the grid (their "
                             "folder names, e.g. ce_sym0.5_s1,ce_sanm_label-targets_sym0.5_s1)")
    args = parser.parse_args(argv)
    budget = BUDGETS[args.budget]
    methods = args.methods.split(",")
    unknown = [m for m in methods if m not in budget.epochs]
    if unknown:
        raise SystemExit(f"Budget {args.budget!r} has no epochs for {unknown}; "
                         f"it covers {sorted(budget.epochs)}.")
    overrides = {}
    if args.noises:
        overrides["noises"] = tuple(args.noises.split(","))
    if args.seeds:
        overrides["seeds"] = tuple(int(s) for s in args.seeds.split(","))
    if args.backend:
        overrides["backend"] = args.backend
    budget = dataclasses.replace(budget, **overrides)
    out = args.out or os.path.join("results", args.budget)
    os.makedirs(out, exist_ok=True)
    known: dict[str, dict] = {}
    for path in args.known:
        rows_of_path = known_rows(path, budget)
        # A row carried into two tables (both runs started from one committed
        # table) is one run; two different rows for one cell are refused.
        twice = sorted(name for name in set(known) & set(rows_of_path)
                       if _row_text(known[name]) != _row_text(rows_of_path[name]))
        if twice:
            raise SystemExit(f"{path}: cells {twice} are also in an earlier --known table "
                             "with other results; keep one row per cell.")
        known.update(rows_of_path)
    try:
        cells = grid(budget, methods, [p for p in args.ablation.split(",") if p],
                     [t for t in args.masked_targets.split(",") if t],
                     start="simclr" if args.init else "",
                     warmups=[w for w in args.warmup_augments.split(",") if w])
    except ValueError as error:
        raise SystemExit(f"--ablation / --masked-targets / --warmup-augments: {error}") from None
    cells = [c for c in cells if args.variants == "both" or c.sanm == (args.variants == "sanm")]
    if args.cells:
        wanted = args.cells.split(",")
        missing = [name for name in wanted if name not in {c.name for c in cells}]
        if missing:
            raise SystemExit(f"--cells: {missing} are not cells of this grid; it has "
                             f"{[c.name for c in cells]}.")
        cells = [c for c in cells if c.name in wanted]
    command = "python -m benchmarks accuracy " + " ".join(argv if argv is not None else sys.argv[1:])
    header = provenance(command, args.budget, budget)
    rows = []
    start = time.time()
    for i, cell in enumerate(cells, 1):
        print(f"[{i}/{len(cells)}] {cell.name} ...", end=" ", flush=True)
        row = known.get(cell.name) or run_cell(budget, cell, args.data_dir, out, args.init)
        rows.append(row)
        print(f"best {row['best']:.4f} last {row['last']:.4f} ({count_text(row['wall_s'])} s"
              f"{', from --known' if cell.name in known else ''}; "
              f"grid {time.time() - start:.0f} s so far)", flush=True)
        # The tables are rewritten after every cell: a grid cut short keeps them.
        page = write_tables(out, rows, header)
    print("\n" + page)
    return 0


def write_tables(out: str, rows: list[dict], header: str) -> str:
    """Writes `runs.csv`, `results.csv` and `results.md` of `rows`; returns the page."""
    _write_csv(os.path.join(out, "runs.csv"), rows)
    _write_csv(os.path.join(out, "results.csv"), summary_rows(rows))
    page = markdown(rows, header)
    with open(os.path.join(out, "results.md"), "w") as f:
        f.write(page)
    return page


if __name__ == "__main__":
    sys.exit(main())
