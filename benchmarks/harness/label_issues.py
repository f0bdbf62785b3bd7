"""`python -m benchmarks label-issues`: how well each approach finds the flipped labels.

On an accuracy budget's data (default `cpu-regime`: 2,000 CIFAR-10 training
images, PreAct ResNet-18 at width 8, TensorFlow) with synthetic noise, every
approach flags label issues among the training samples, and the flags and the
ranking are scored against the labels known to be flipped
(`keras_sanm.label_issues.detection_scores`: precision, recall, F1, AUROC):

* `dividemix`, `sanm_dividemix`, `ssr`: one training run of the method (the
  accuracy harness's cell, shared with its grid); the issues are the samples
  whose `model.label_quality` (GMM on both networks' losses) is at most 0.5.
* `ssr_selection`: the same SSR run judged as SSR judges labels while it
  trains: a given label is an issue unless SSR keeps it (not relabelled,
  and at least `select_threshold` times the top vote of its `k`
  neighbours); the ranking is the given label's share of the top vote.
* `cleanlab_on_dividemix`, `cleanlab_on_sanm_dividemix`: cleanlab's
  `find_label_issues` on that trained model's probabilities of its own
  training images (no extra training; in-sample probabilities).
* `cleanlab_cv_ce`: cleanlab's `find_label_issues` on 5-fold out-of-sample
  probabilities of plain CE (`keras_sanm.cross_val_predict_proba`, each fold
  trained with the budget's CE settings).

cleanlab's ranking for AUROC is `cleanlab.rank.get_label_quality_scores`
(self-confidence). The wall time of an approach is its training time plus its
scoring time (training counted once for a method and cleanlab on it: the
cleanlab row adds only its own scoring). Every cell resumes: a method run from
its checkpoint, a cross-validation from its finished folds.

Example:
    python -m benchmarks label-issues --noises sym:0.2 --seeds 0 \\
        --data-dir ../shared/data/cifar10 --out results/label-issues
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import time

from benchmarks.harness.accuracy import (
    BUDGETS,
    Budget,
    Cell,
    _write_csv,
    run_cell,
    run_provenance,
)

METHOD_APPROACHES = {"dividemix": ("dividemix", False), "sanm_dividemix": ("dividemix", True),
                     "ssr": ("ssr", False)}
# SSR's own judgement of the same trained model: its relabelling and neighbour vote.
SELECTION_OF = {"ssr_selection": "ssr"}
CLEANLAB_ON = {"cleanlab_on_dividemix": "dividemix",
               "cleanlab_on_sanm_dividemix": "sanm_dividemix"}
APPROACHES = (*METHOD_APPROACHES, *SELECTION_OF, *CLEANLAB_ON, "cleanlab_cv_ce")
FOLDS = 5
SCORES = "label_issue_scores.json"


def _cleanlab_scores(labels, probabilities, wrong) -> dict:
    from cleanlab.filter import find_label_issues
    from cleanlab.rank import get_label_quality_scores

    from keras_sanm.label_issues import detection_scores

    start = time.perf_counter()
    issues = find_label_issues(labels, probabilities)
    quality = get_label_quality_scores(labels, probabilities)
    seconds = time.perf_counter() - start
    return {**detection_scores(issues, quality, wrong), "score_s": seconds}


def score_run(run_dir: str, data_dir: str) -> dict:
    """Scores a finished method run: its label quality, and cleanlab on its probabilities.

    Runs in a subprocess under the run's backend; writes `SCORES` in `run_dir`.
    """
    from keras_sanm.label_issues import detection_scores
    from keras_sanm.viz.run_figures import _load_model, _summary, run_training_data

    summary = _summary(run_dir)
    model = _load_model(run_dir)
    data = run_training_data(summary, run_dir, data_dir)
    images, given, wrong = data["images"], data["given"], data["given"] != data["true"]
    start = time.perf_counter()
    quality = model.label_quality(images, given)
    own = {**detection_scores(quality <= 0.5, quality, wrong),
           "score_s": time.perf_counter() - start}
    start = time.perf_counter()
    probabilities = model.predict_proba(images, verbose=0)
    predict_s = time.perf_counter() - start
    cleanlab = _cleanlab_scores(given, probabilities, wrong)
    cleanlab["score_s"] += predict_s
    if summary["method"] == "ssr":
        own_selection = ssr_selection(model, images, given, wrong)
    result = {"own": own, "cleanlab": cleanlab, "train_s": summary["wall_seconds"],
              "wrong": int(wrong.sum()), "samples": len(given),
              "best": summary["best_test_accuracy"], "last": summary["last_test_accuracy"]}
    if summary["method"] == "ssr":
        result["selection"] = own_selection
    with open(os.path.join(run_dir, SCORES), "w") as f:
        json.dump(result, f, indent=1)
    return result


def ssr_selection(model, images, given, wrong) -> dict:
    """SSR's own verdict on every given label, from the trained model (unaugmented images)."""
    import numpy as np

    from keras_sanm.label_issues import detection_scores
    from keras_sanm.methods.ssr.knn_selection import knn_label_votes, relabel, select_clean

    start = time.perf_counter()
    features, probabilities = model.selection_outputs(images)
    labels = relabel(probabilities, given, model.relabel_threshold)
    votes = knn_label_votes(features, labels, model.num_classes, model.k, model.class_prior)
    clean, _ = select_clean(votes, labels, model.select_threshold)
    kept = clean & (labels == given)
    share = votes[np.arange(len(given)), given] / np.maximum(votes.max(axis=1), 1e-12)
    return {**detection_scores(~kept, share, wrong), "score_s": time.perf_counter() - start}


def cross_validate(out_dir: str, budget: Budget, noise: str, seed: int, data_dir: str) -> dict:
    """cleanlab on 5-fold CE probabilities of one noise cell; writes `SCORES` in `out_dir`.

    The folds' models are the budget's CE runs (backbone, width, batch size,
    epochs, learning-rate drop), each on four fifths of the same training
    images and noisy labels as the method runs.
    """
    import keras

    import keras_sanm
    from keras_sanm import datasets
    from keras_sanm.data import inject_noise

    data = datasets.load("cifar10", data_dir, budget.train_size, budget.test_size, seed=seed,
                         download=False)
    mode, rate = noise.split(":")
    given = inject_noise(data.y_train, data.num_classes, mode=mode, rate=float(rate))
    wrong = given != data.y_train
    drop = budget.drop_epoch("ce")

    def make_model():
        base = keras_sanm.backbones.get(budget.backbone, data.num_classes,
                                        data.x_train.shape[1:], width=budget.width)
        model = keras_sanm.wrap(base, method="ce", sanm=False, seed=seed)
        model.compile(lr_drop_epochs=None if drop is None else (drop,))
        return model

    keras.utils.set_random_seed(seed)
    start = time.perf_counter()
    probabilities = keras_sanm.cross_val_predict_proba(
        make_model, data.x_train, given, folds=FOLDS, seed=seed,
        fit_kwargs={"epochs": budget.epochs["ce"], "batch_size": budget.batch_size,
                    "verbose": 2},
        directory=os.path.join(out_dir, "folds"))
    # Folds read back after a resume took no time here: count the folds' own records.
    train_s = _folds_seconds(os.path.join(out_dir, "folds"), time.perf_counter() - start)
    result = {"cleanlab": _cleanlab_scores(given, probabilities, wrong), "train_s": train_s,
              "wrong": int(wrong.sum()), "samples": len(given)}
    with open(os.path.join(out_dir, SCORES), "w") as f:
        json.dump(result, f, indent=1)
    return result


def _folds_seconds(folds_dir: str, fallback: float) -> float:
    """The folds' summed training time, from their checkpoints where they recorded it."""
    from keras_sanm.training.backup import TrainingBackup

    seconds = []
    for k in range(FOLDS):
        state = TrainingBackup.latest(os.path.join(folds_dir, f"fold_{k}_checkpoint"))
        if state is None or state.get("training_seconds") is None:
            return fallback
        seconds.append(state["training_seconds"])
    return float(sum(seconds))


def _subprocess(budget: Budget, *arguments: str, log: str) -> None:
    command = [sys.executable, "-m", "benchmarks.harness.label_issues", *arguments]
    environment = {**os.environ, "KERAS_BACKEND": budget.backend}
    with open(log, "a") as f:
        code = subprocess.run(command, stdout=f, stderr=subprocess.STDOUT,
                              env=environment).returncode
    if code:
        raise RuntimeError(f"{' '.join(arguments)} failed (exit {code}); see {log}")


def rows_of_cell(budget: Budget, budget_name: str, approaches, noise: str, seed: int,
                 data_dir: str, out: str) -> list[dict]:
    """Runs (or reads back) every approach of one noise cell; one row per approach."""
    rows = []
    base = {"budget": budget_name, "noise": noise, "seed": seed, **run_provenance()}
    for approach in approaches:
        if approach == "cleanlab_cv_ce":
            folder = os.path.join(out, f"cleanlab_cv_ce_{noise.replace(':', '')}_s{seed}")
            os.makedirs(folder, exist_ok=True)
            if not os.path.exists(os.path.join(folder, SCORES)):
                _subprocess(budget, "--cross-validate", folder, "--budget", budget_name,
                            "--noise", noise, "--seed", str(seed), "--data-dir", data_dir,
                            log=os.path.join(folder, "cross_val.log"))
            with open(os.path.join(folder, SCORES)) as f:
                found = json.load(f)
            scores, train_s, accuracy = found["cleanlab"], found["train_s"], {}
        else:
            method_approach = CLEANLAB_ON.get(approach, SELECTION_OF.get(approach, approach))
            method, sanm = METHOD_APPROACHES[method_approach]
            cell = Cell(method, sanm, noise, seed)
            run_cell(budget, cell, data_dir, out)
            run_dir = os.path.join(out, cell.name)
            if not os.path.exists(os.path.join(run_dir, SCORES)):
                _subprocess(budget, "--score", run_dir, "--data-dir", data_dir,
                            log=os.path.join(run_dir, "label_issues.log"))
            with open(os.path.join(run_dir, SCORES)) as f:
                found = json.load(f)
            scores = found["cleanlab" if approach in CLEANLAB_ON else
                           "selection" if approach in SELECTION_OF else "own"]
            # The method's training is counted in its own row; cleanlab and SSR's
            # selection add their scoring.
            train_s = 0.0 if approach in CLEANLAB_ON or approach in SELECTION_OF else \
                found["train_s"]
            accuracy = {"best": found["best"], "last": found["last"]}
        rows.append({**base, "approach": approach, **accuracy,
                     **{k: scores[k] for k in ("precision", "recall", "f1", "auroc", "flagged")},
                     "wrong": found["wrong"], "samples": found["samples"],
                     "train_s": train_s, "score_s": scores["score_s"],
                     "wall_s": train_s + scores["score_s"]})
    return rows


def _spread(values) -> str:
    if len(values) == 1:
        return f"{values[0]:.3f}"
    return f"{statistics.fmean(values):.3f} ± {statistics.stdev(values):.3f}"


def table(rows: list[dict]) -> str:
    """A markdown table: mean ± std over seeds per noise and approach, best F1 marked."""
    lines = ["| noise | approach | seeds | precision | recall | F1 | AUROC | flagged | "
             "wall time (min) |", "| --- | --- | --- | --- | --- | --- | --- | --- | --- |"]
    noises = list(dict.fromkeys(r["noise"] for r in rows))
    for noise in noises:
        cell = [r for r in rows if r["noise"] == noise]
        means = {a: statistics.fmean(float(r["f1"]) for r in cell if r["approach"] == a)
                 for a in dict.fromkeys(r["approach"] for r in cell)}
        best = max(means, key=means.get)
        for approach in means:
            mine = [r for r in cell if r["approach"] == approach]
            name = f"**{approach}**" if approach == best else approach
            values = {k: [float(r[k]) for r in mine] for k in
                      ("precision", "recall", "f1", "auroc", "flagged", "wall_s")}
            lines.append(
                f"| {noise} | {name} | {len(mine)} | {_spread(values['precision'])} | "
                f"{_spread(values['recall'])} | {_spread(values['f1'])} | "
                f"{_spread(values['auroc'])} | {statistics.fmean(values['flagged']):.0f} | "
                f"{statistics.fmean(values['wall_s']) / 60:.1f} |")
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m benchmarks label-issues",
                                     description=__doc__.split("\n\n")[0])
    parser.add_argument("--budget", default="cpu-regime", choices=BUDGETS)
    parser.add_argument("--noises", default="sym:0.2,sym:0.4,asym:0.4")
    parser.add_argument("--seeds", default="0,1")
    parser.add_argument("--approaches", default=",".join(APPROACHES),
                        help=f"comma-separated, of {', '.join(APPROACHES)}")
    parser.add_argument("--data-dir", required=True)
    parser.add_argument("--out", default="results/label-issues")
    # Internal: the per-cell work, run in a subprocess under the budget's backend.
    parser.add_argument("--score", default=None, help=argparse.SUPPRESS)
    parser.add_argument("--cross-validate", default=None, help=argparse.SUPPRESS)
    parser.add_argument("--noise", default=None, help=argparse.SUPPRESS)
    parser.add_argument("--seed", type=int, default=0, help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    budget = BUDGETS[args.budget]
    if args.score:
        score_run(args.score, args.data_dir)
        return 0
    if args.cross_validate:
        cross_validate(args.cross_validate, budget, args.noise, args.seed, args.data_dir)
        return 0
    approaches = [a for a in args.approaches.split(",") if a]
    unknown = sorted(set(approaches) - set(APPROACHES))
    if unknown:
        raise SystemExit(f"--approaches: unknown {unknown}; choose from {', '.join(APPROACHES)}")
    os.makedirs(args.out, exist_ok=True)
    rows = []
    for noise in args.noises.split(","):
        for seed in (int(s) for s in args.seeds.split(",")):
            rows += rows_of_cell(budget, args.budget, approaches, noise, seed, args.data_dir,
                                 args.out)
            _write_csv(os.path.join(args.out, "runs.csv"), rows)
    markdown = table(rows)
    with open(os.path.join(args.out, "results.md"), "w") as f:
        f.write(markdown + "\n")
    print(markdown)
    return 0


if __name__ == "__main__":
    sys.exit(main())
