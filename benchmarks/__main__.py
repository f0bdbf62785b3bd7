"""`python -m benchmarks KIND [options]`: the research harness's entry point.

Run from the repository root (the harness is not installed with the package):

    python -m benchmarks accuracy --budget cpu-regime --methods ce --seeds 0
    python -m benchmarks speed --backends jax --steps 5
    python -m benchmarks accuracy --help      # a benchmark's own options
"""

from __future__ import annotations

import argparse
import importlib
import sys

# KIND -> module with a `main(argv)`.
BENCHMARKS = {
    "speed": "benchmarks.harness.step_time",
    "accuracy": "benchmarks.harness.accuracy",
    "regime": "benchmarks.harness.regime",
    "keras-baseline": "benchmarks.harness.keras_baseline",
    "mechanism": "benchmarks.harness.mechanism",
    "classes": "benchmarks.harness.predicted_classes",
    "label-issues": "benchmarks.harness.label_issues",
}


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="python -m benchmarks",
        description="speed (step time and memory per method and backend), accuracy (CIFAR-10 "
                    "grid), regime (CE runs that memorise wrong labels), keras-baseline (plain "
                    "Keras fit), mechanism (what SANM's masked copies do), classes (which "
                    "classes a finished run predicts) or label-issues (how well each approach "
                    "finds flipped labels, against cleanlab). `python -m benchmarks speed --help` "
                    "lists a benchmark's options.")
    parser.add_argument("kind", choices=BENCHMARKS, help="which benchmark")
    parser.add_argument("options", nargs=argparse.REMAINDER, help="the benchmark's own options")
    return parser


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    return importlib.import_module(BENCHMARKS[args.kind]).main(args.options)


if __name__ == "__main__":
    sys.exit(main())
