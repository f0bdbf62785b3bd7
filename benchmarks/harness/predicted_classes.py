"""Which classes a finished run predicts: a check for collapsed predictions.

A network trained on very noisy labels can collapse onto a few classes: it
predicts only those, for every image. DivideMix's clean/noisy split then
stops measuring label quality: every sample whose given label is one of the
predicted classes has a low loss, every other sample a high one, and the
split keeps exactly the samples labeled with those classes, whatever their
label's quality. For each finished `keras-sanm train` run this prints:

* `test` / `train`: how many images of the test set and the training set
  are predicted as each class (inference mode, no augmentation);
* `classes predicted`: the number of classes predicted for at least 1% of
  the test images;
* `train labels in predicted classes`: the training images whose given
  (noisy) label is one of those classes, to set beside the labeled-set size
  in the run's `log.csv`;
* `last labeled`: the last epoch's labeled-set size of network 1 (DivideMix
  runs; from `log.csv`).

    python -m benchmarks classes results/grid_dm/dividemix_sym0.8_s0 \\
        results/grid_dm/dividemix_sanm_sym0.8_s0
"""

from __future__ import annotations

import argparse
import csv
import os
import sys

import numpy as np

from benchmarks.harness.mechanism import check_finished_runs, load_finished_run, show_page

# A class counts as predicted when at least this share of the test images gets it.
PREDICTED_SHARE = 0.01


def predicted_classes(run_dir: str, batch_size: int = 250) -> dict:
    """Prediction histograms of one finished run.

    Args:
        run_dir: a finished `keras-sanm train` folder (with `model.keras`).
        batch_size: images per inference batch.

    Returns:
        `{"test": counts, "train": counts, "predicted": classes,
        "labels_in_predicted": int, "last_labeled": int | None,
        "test_accuracy": float}`, counts as `(num_classes,)` integer arrays.
    """
    model, data, noisy, _ = load_finished_run(run_dir)
    counts = {}
    for split, images in (("test", data.x_test), ("train", data.x_train)):
        scores = model.predict(images, batch_size=batch_size, verbose=0)
        predictions = np.argmax(np.asarray(scores), axis=-1)
        counts[split] = np.bincount(predictions, minlength=data.num_classes)
        if split == "test":
            accuracy = float(np.mean(predictions == np.asarray(data.y_test)))
    predicted = np.flatnonzero(counts["test"] >= PREDICTED_SHARE * counts["test"].sum())
    return {"test": counts["test"], "train": counts["train"], "predicted": predicted,
            "labels_in_predicted": int(np.isin(noisy, predicted).sum()),
            "last_labeled": _last_labeled(run_dir), "test_accuracy": accuracy}


def _last_labeled(run_dir: str) -> int | None:
    path = os.path.join(run_dir, "log.csv")
    if not os.path.exists(path):
        return None
    with open(path) as f:
        rows = [row for row in csv.DictReader(f) if row.get("labeled_1") not in (None, "", "nan")]
    return int(float(rows[-1]["labeled_1"])) if rows else None


def markdown(results: list[tuple[str, dict]]) -> str:
    """One row per run."""
    lines = ["| run | test acc % | test predictions per class | train predictions per class "
             "| classes predicted | train labels in predicted classes | last labeled |",
             "|" + " --- |" * 7]
    for run_dir, r in results:
        labeled = "–" if r["last_labeled"] is None else str(r["last_labeled"])
        lines.append(
            f"| {os.path.basename(os.path.normpath(run_dir))} | {100 * r['test_accuracy']:.2f} | "
            f"{' '.join(map(str, r['test']))} | {' '.join(map(str, r['train']))} | "
            f"{len(r['predicted'])} ({', '.join(map(str, r['predicted']))}) | "
            f"{r['labels_in_predicted']} | {labeled} |")
    return "\n".join(lines) + "\n"


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(prog="python -m benchmarks classes", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("runs", nargs="+", help="finished `keras-sanm train` folders")
    parser.add_argument("--out", default=None, help="also write the table to this file")
    args = parser.parse_args(argv)
    check_finished_runs(parser, args.runs)
    show_page(markdown([(run, predicted_classes(run)) for run in args.runs]), args.out)
    return 0


if __name__ == "__main__":
    sys.exit(main())
