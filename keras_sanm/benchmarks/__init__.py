"""Benchmarks shipped with the package: `keras-sanm bench speed` and `keras-sanm bench accuracy`.

* `step_time`: median training-step time and peak memory per method and backend.
* `accuracy`: the accuracy grid on CIFAR-10 with results tables.
* `memory`: the process memory high-water mark around a piece of work.
"""
