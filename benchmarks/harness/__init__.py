"""The research harness: the measurements behind docs/results.md and docs/benchmarks.md.

It is not part of the installed package: run it from the repository root
with `python -m benchmarks KIND [options]` (see `benchmarks/__main__.py`).

* `step_time`: median training-step time and peak memory per method and backend.
* `accuracy`: the accuracy grid on CIFAR-10 with results tables.
* `regime`: CE runs that memorise wrong labels (the cpu-regime budget).
* `keras_baseline`: the same training as a plain Keras `fit`.
* `mechanism`: what SANM's masked copies do.
* `predicted_classes`: which classes a finished run predicts.
* `gpu_check`: the ten-minute GPU run (`benchmarks/gpu_check.sh`).
* `memory`: the process memory high-water mark around a piece of work.
"""
