"""Search for a memorisation regime: plain CE runs that over-fit wrong labels.

SANM exists to stop a network from learning wrong labels. Its gain can only
be measured where plain cross-entropy does learn them, so the accuracy grid
is run in a regime chosen with CE alone, before any SANM run. A candidate is
a (training-subset size, PreAct ResNet-18 width, epochs) triple; each is one
plain-CE `keras-sanm train` run (weak augmentation, the reference SGD with
coupled weight decay, the learning rate divided by 10 at half the epochs)
at the given noise. A candidate qualifies when both hold:

* (a) after the last epoch, the network fits its noisy training labels
  (inference mode, no augmentation) at least `--fit-margin` (10 points)
  above the fraction of labels that are correct: it has learned wrong labels;
* (b) its last test accuracy is at least `--drop-margin` (5 points) below
  its best: learning them costs accuracy.

A candidate must qualify on every seed of `--seeds` (the grid runs several;
seeds after a failing one are not run). Among qualifying candidates the
cheapest (training images x epochs x width^2, proportional to the work) is
chosen. Finished runs are reused, so the search
resumes; `<out>/regime.md` and `<out>/regime.csv` list every candidate tried,
failures included.

    python -m benchmarks regime --data-dir ../shared/data/cifar10 --out results/regime \\
        --candidates 2500x16x100,1000x16x100
"""

from __future__ import annotations

import argparse
import dataclasses
import os
import sys

from benchmarks.harness.accuracy import Budget, Cell, count_text, provenance, run_cell


@dataclasses.dataclass(frozen=True)
class Candidate:
    """One regime candidate: training images, network width and epochs."""

    train_size: int
    width: int
    epochs: int

    @property
    def name(self) -> str:
        return f"{self.train_size}x{self.width}x{self.epochs}"

    @property
    def work(self) -> float:
        """Relative training work: image-epochs x width^2 (conv FLOPs scale with width^2)."""
        return self.train_size * self.epochs * self.width ** 2

    @classmethod
    def parse(cls, text: str) -> Candidate:
        try:
            size, width, epochs = (int(part) for part in text.lower().split("x"))
        except ValueError:
            raise argparse.ArgumentTypeError(
                f"a candidate is SIZExWIDTHxEPOCHS, e.g. 2500x16x100; got {text!r}") from None
        if min(size, width, epochs) < 1:
            raise argparse.ArgumentTypeError(f"candidate values must be positive; got {text!r}")
        return cls(size, width, epochs)


def budget_for(candidate: Candidate, backend: str, test_size: int, noise: str,
               seed: int) -> Budget:
    """The single-cell CE budget of one candidate (drop at half the epochs)."""
    return Budget(
        backend=backend, backbone="preact_resnet18", train_size=candidate.train_size,
        test_size=test_size, noises=(noise,), seeds=(seed,), epochs={"ce": candidate.epochs},
        warmup_epochs={}, width=candidate.width, lr_drop_fraction=0.5,
    )


def verdict(row: dict, fit_margin: float, drop_margin: float) -> dict:
    """Criteria (a) and (b) of one finished CE run.

    Args:
        row: `accuracy.run_row` of the run (`train_accuracy` is the fit of
            the noisy labels after the last epoch, `correct_fraction` the
            share of correct labels).
        fit_margin: required excess of the noisy-label fit over the correct share.
        drop_margin: required drop from the best to the last test accuracy.

    Returns:
        `{"fit_excess", "drop", "fits_wrong_labels", "loses_accuracy", "qualifies"}`.
    """
    fit_excess = row["train_accuracy"] - row["correct_fraction"]
    drop = row["best"] - row["last"]
    fits, loses = fit_excess >= fit_margin, drop >= drop_margin
    return {"fit_excess": fit_excess, "drop": drop, "fits_wrong_labels": fits,
            "loses_accuracy": loses, "qualifies": fits and loses}


def markdown(results: list[tuple[Candidate, dict, dict]], header: str, chosen) -> str:
    lines = [header, "",
             "| candidate (images x width x epochs) | seed | relative work | wall time (s) | "
             "best acc % | last acc % | mean of last 10 % | epoch of best | correct labels % | "
             "noisy labels fitted % | wrong labels memorised % | (a) fit - correct | "
             "(b) best - last | qualifies |",
             "| --- | --- | --- | --- | --- | --- | --- | --- | --- | --- | --- | --- | --- | --- |"]
    smallest = min(c.work for c, _, _ in results)
    for candidate, row, v in results:
        memorised = "–" if row.get("memorised") is None else f"{100 * row['memorised']:.1f}"
        lines.append(
            f"| {candidate.name} | {row['seed']} | {candidate.work / smallest:.2f} | "
            f"{count_text(row['wall_s'])} | "
            f"{100 * row['best']:.2f} | {100 * row['last']:.2f} | {100 * row['last10']:.2f} | "
            f"{row['best_epoch']} / {row['epochs']} | {100 * row['correct_fraction']:.1f} | "
            f"{100 * row['train_accuracy']:.1f} | {memorised} | {100 * v['fit_excess']:+.1f} "
            f"({'yes' if v['fits_wrong_labels'] else 'no'}) | {100 * v['drop']:+.1f} "
            f"({'yes' if v['loses_accuracy'] else 'no'}) | {'**yes**' if v['qualifies'] else 'no'} |")
    lines.append("")
    lines.append(f"Cheapest qualifying candidate: **{chosen.name}**." if chosen else
                 "No candidate qualifies.")
    return "\n".join(lines) + "\n"


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(prog="python -m benchmarks regime", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--candidates", required=True,
                        type=lambda t: [Candidate.parse(p) for p in t.split(",")],
                        help="comma-separated SIZExWIDTHxEPOCHS, run in this order")
    parser.add_argument("--data-dir", default="../shared/data/cifar10")
    parser.add_argument("--out", default=os.path.join("results", "regime"))
    parser.add_argument("--backend", default="tensorflow")
    parser.add_argument("--test-size", type=int, default=2000)
    parser.add_argument("--noise", default="sym:0.5")
    parser.add_argument("--seeds", default="0,1",
                        help="a candidate qualifies only if it does on every seed")
    parser.add_argument("--fit-margin", type=float, default=0.10)
    parser.add_argument("--drop-margin", type=float, default=0.05)
    args = parser.parse_args(argv)
    os.makedirs(args.out, exist_ok=True)
    seeds = [int(seed) for seed in args.seeds.split(",")]
    results, qualifying = [], []
    for i, candidate in enumerate(args.candidates, 1):
        for seed in seeds:
            print(f"[{i}/{len(args.candidates)}] {candidate.name} seed {seed} ...", end=" ",
                  flush=True)
            budget = budget_for(candidate, args.backend, args.test_size, args.noise, seed)
            row = run_cell(budget, Cell("ce", False, args.noise, seed),
                           args.data_dir, os.path.join(args.out, candidate.name))
            if row.get("memorised") is None:
                raise RuntimeError(f"{candidate.name}: the run has no label-fit measurement.")
            v = verdict(row, args.fit_margin, args.drop_margin)
            results.append((candidate, row, v))
            print(f"best {row['best']:.4f} last {row['last']:.4f}, fits noisy labels "
                  f"{row['train_accuracy']:.3f} (correct {row['correct_fraction']:.3f}): "
                  f"{'qualifies' if v['qualifies'] else 'does not qualify'} "
                  f"({count_text(row['wall_s'])} s)", flush=True)
            if not v["qualifies"]:
                break
        else:
            qualifying.append(candidate)
    chosen = min(qualifying, key=lambda c: c.work) if qualifying else None
    command = "python -m benchmarks regime " + " ".join(argv if argv is not None else sys.argv[1:])
    header = provenance(command, "regime search", budget_for(
        args.candidates[0], args.backend, args.test_size, args.noise, seeds[0]))
    header = header.split("\n\n", 1)[1]  # the budget line describes one candidate only
    header = (f"CE only, noise {args.noise}, seeds {args.seeds}, backend {args.backend}, "
              f"PreAct ResNet-18, {args.test_size} test images, batch 64, reference SGD, "
              f"learning rate /10 at half the epochs; criteria: (a) fit - correct >= "
              f"{100 * args.fit_margin:.0f} points, (b) best - last >= "
              f"{100 * args.drop_margin:.0f} points, on every seed.\n\n" + header)
    page = markdown(results, header, chosen)
    with open(os.path.join(args.out, "regime.md"), "w") as f:
        f.write(page)
    with open(os.path.join(args.out, "regime.csv"), "w") as f:
        keys = ["candidate", "seed", "work", "best", "last", "last10", "best_epoch", "epochs",
                "correct_fraction", "train_accuracy", "memorised", "wall_s", "qualifies"]
        f.write(",".join(keys) + "\n")
        for candidate, row, v in results:
            values = {**row, "candidate": candidate.name, "work": candidate.work,
                      "qualifies": v["qualifies"]}
            f.write(",".join(str(values[k]) for k in keys) + "\n")
    print("\n" + page)
    return 0


if __name__ == "__main__":
    sys.exit(main())
