"""The pretraining budget of the cpu-regime: kNN and linear-probe read-outs, and the rule's choice.

Each candidate is one `keras-sanm pretrain` run on the cpu-regime data of
seed 0 (the 2,000 training images `train --train-size 2000 --seed 0` draws,
plus further CIFAR-10 training images without labels), read out every few
epochs; each read-out is one (width, images, epochs) candidate. The rule,
written in docs/results.md before any read-out: the width-8 candidate with
the least pretraining work (images x epochs) whose kNN accuracy is within
1 point of the highest width-8 kNN accuracy; width 16 is a reference only.

    python benchmarks/pretraining_budget.py --run --data-dir ../shared/data/cifar10 \\
        --out results/pretrain-budget          # runs (or resumes) the candidates
    python benchmarks/pretraining_budget.py --out results/pretrain-budget   # tables only

Writes `<out>/budget.md` and `<out>/readouts.csv`.
"""

from __future__ import annotations

import argparse
import csv
import json
import os
import sys

# (width, extra images, epochs, read-out every): the candidates the rule names.
CANDIDATES = ((8, 0, 200, 10), (8, 8000, 60, 5), (8, 48000, 16, 2), (16, 0, 200, 20))
TRAIN_IMAGES = 2000
CHOSEN_WIDTH = 8
WITHIN = 0.01


def folder(out: str, width: int, extra: int, epochs: int) -> str:
    return os.path.join(out, f"w{width}_x{extra}_e{epochs}")


def run(out: str, data_dir: str, backend: str) -> None:
    """Runs every candidate not finished yet (a killed one resumes)."""
    from keras_sanm import cli

    for width, extra, epochs, every in CANDIDATES:
        path = folder(out, width, extra, epochs)
        if os.path.exists(os.path.join(path, "summary.json")):
            continue
        cli.main(["pretrain", "--backend", backend, "--data-dir", data_dir,
                  "--train-size", str(TRAIN_IMAGES), "--test-size", "2000",
                  "--extra-images", str(extra), "--width", str(width), "--epochs", str(epochs),
                  "--batch-size", "256", "--readout-every", str(every), "--probe",
                  "--seed", "0", "--output", path, "--verbose", "2", "--resume"])


def readouts(out: str) -> list[dict]:
    """Every read-out of every candidate run so far (finished or not)."""
    rows = []
    for width, extra, epochs, _ in CANDIDATES:
        path = os.path.join(folder(out, width, extra, epochs), "readouts.csv")
        if not os.path.exists(path):
            continue
        summary_path = os.path.join(folder(out, width, extra, epochs), "summary.json")
        seconds = None
        if os.path.exists(summary_path):
            with open(summary_path) as f:
                seconds = json.load(f).get("wall_seconds")
        with open(path, newline="") as f:
            for row in csv.DictReader(f):
                images = TRAIN_IMAGES + extra
                rows.append({"width": width, "images": images, "epochs": int(row["epoch"]),
                             "work": images * int(row["epoch"]),
                             "knn": float(row["knn_accuracy"]),
                             "probe": float(row.get("probe_accuracy") or "nan"),
                             "run_epochs": epochs, "run_seconds": seconds})
    return rows


def choose(rows: list[dict]) -> dict | None:
    """The rule: the cheapest width-8 read-out within 1 point of the best width-8 kNN."""
    eligible = [r for r in rows if r["width"] == CHOSEN_WIDTH and r["epochs"] > 0]
    if not eligible:
        return None
    best = max(r["knn"] for r in eligible)
    return min((r for r in eligible if r["knn"] >= best - WITHIN),
               key=lambda r: (r["work"], -r["knn"]))


def markdown(rows: list[dict], chosen: dict | None) -> str:
    lines = ["| width | images | epochs | work (image-epochs) | kNN acc % | linear probe acc % |",
             "| --- | --- | --- | --- | --- | --- |"]
    for r in rows:
        mark = " **chosen**" if r is chosen else ""
        lines.append(f"| {r['width']} | {r['images']} | {r['epochs']}{mark} | {r['work']} | "
                     f"{100 * r['knn']:.2f} | {100 * r['probe']:.2f} |")
    runs = {(r["width"], r["images"], r["run_epochs"]): r["run_seconds"] for r in rows}
    lines += ["", "Wall time of each candidate run (s, read-outs included): " + ", ".join(
        f"width {w}, {i} images, {e} epochs: "
        + ("unfinished" if s is None else f"{s:.0f}") for (w, i, e), s in runs.items()) + "."]
    if chosen:
        lines += ["", f"Chosen by the rule: width {chosen['width']}, {chosen['images']} images, "
                      f"{chosen['epochs']} epochs (kNN {100 * chosen['knn']:.2f}%)."]
    return "\n".join(lines) + "\n"


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--out", default=os.path.join("results", "pretrain-budget"))
    parser.add_argument("--data-dir", default="../shared/data/cifar10")
    parser.add_argument("--backend", default="tensorflow")
    parser.add_argument("--run", action="store_true", help="run or resume the candidates first")
    args = parser.parse_args(argv)
    if args.run:
        run(args.out, args.data_dir, args.backend)
    rows = readouts(args.out)
    if not rows:
        raise SystemExit(f"No read-outs in {args.out}; run with --run first.")
    chosen = choose(rows)
    page = markdown(rows, chosen)
    os.makedirs(args.out, exist_ok=True)
    with open(os.path.join(args.out, "budget.md"), "w") as f:
        f.write(page)
    with open(os.path.join(args.out, "readouts.csv"), "w", newline="") as f:
        writer = csv.DictWriter(f, fieldnames=list(rows[0]))
        writer.writeheader()
        writer.writerows(rows)
    print(page)
    return 0


if __name__ == "__main__":
    sys.exit(main())
