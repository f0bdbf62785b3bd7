"""Where a JAX training step spends its time on the CPU: XLA's operations by kind.

Builds the package's training step (`wrap(...)` as `fit` runs it, PreAct
ResNet-18, `compile()` defaults, the package's XLA flags), times it, then
records `--steps` steps with `jax.profiler` and sums the duration of each
XLA operation the CPU runtime reports, grouped by kind (the operation's
name without its number: `transpose_copy_fusion.30` counts as
`transpose_copy_fusion`). It prints the median step time, the summed time
of the reported operations, and the kinds that take the most time. Two
threads run operations side by side, so the sums are busy time, not a
share of the step's wall time; the convolutions themselves run as library
calls that the runtime does not report one by one, which is most of the
difference between the step time and the reported sum.

    KERAS_BACKEND=jax python benchmarks/jax_step_profile.py --method ce
    KERAS_BACKEND=jax python benchmarks/jax_step_profile.py --method dividemix --sanm --top 15
"""

from __future__ import annotations

import argparse
import collections
import glob
import gzip
import json
import os
import re
import statistics
import sys
import tempfile
import time

# Run as `python benchmarks/jax_step_profile.py`: the repository root holds `benchmarks.harness`.
sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))


def build_step(method: str, batch: int, width: int, sanm: bool = False):
    """One training step of `method` (with SANM when `sanm`) as `fit` runs it, on random uint8 images."""
    import keras
    import numpy as np

    import keras_sanm
    from benchmarks.harness.step_time import step_as_fit_runs_it

    rng = np.random.default_rng(0)
    images = rng.integers(0, 256, (4 * batch, 32, 32, 3), dtype=np.uint8)
    labels = rng.integers(0, 10, len(images))
    keras.utils.set_random_seed(0)
    backbone = keras_sanm.backbones.PreActResNet18(10, (32, 32, 3), width=width)
    model = keras_sanm.wrap(backbone, method=method, sanm=sanm, seed=0)
    model.compile()
    step, _ = step_as_fit_runs_it(model, images, labels, batch, rng)
    return step


def operation_times(trace_dir: str, steps: int) -> collections.Counter:
    """Milliseconds per step of each XLA operation kind in the newest trace under `trace_dir`."""
    paths = sorted(glob.glob(os.path.join(trace_dir, "**", "*.trace.json.gz"), recursive=True))
    if not paths:
        raise SystemExit(f"jax.profiler wrote no trace under {trace_dir}.")
    with gzip.open(paths[-1]) as f:
        trace = json.load(f)
    events = trace["traceEvents"] if isinstance(trace, dict) else trace
    kinds = collections.Counter()
    for event in events:
        name = event.get("name", "")
        # Python frames ("$file:line"), executor spans and dispatch are not operations.
        if event.get("ph") != "X" or name.startswith(("$", "ThunkExecutor", "Pjit")) or " " in name:
            continue
        kinds[re.sub(r"\.\d+$", "", name)] += event.get("dur", 0) / 1e3 / steps
    return kinds


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--method", default="ce", help="ce, dividemix, ... (default: ce)")
    parser.add_argument("--sanm", action="store_true", help="the method with SANM (default: plain)")
    parser.add_argument("--batch-size", type=int, default=64)
    parser.add_argument("--width", type=int, default=64, help="PreAct ResNet-18 base width")
    parser.add_argument("--steps", type=int, default=2, help="timed and profiled steps")
    parser.add_argument("--top", type=int, default=10, help="operation kinds to print")
    args = parser.parse_args(argv)
    import keras

    if keras.backend.backend() != "jax":
        parser.error("run with KERAS_BACKEND=jax")
    import jax

    step = build_step(args.method, args.batch_size, args.width, args.sanm)
    step(), step()  # compile and settle
    times = []
    for _ in range(args.steps):
        start = time.perf_counter()
        step()
        times.append(time.perf_counter() - start)
    with tempfile.TemporaryDirectory() as trace_dir:
        jax.profiler.start_trace(trace_dir, create_perfetto_trace=True)
        for _ in range(args.steps):
            step()
        jax.profiler.stop_trace()
        kinds = operation_times(trace_dir, args.steps)
    name = f"SANM({args.method})" if args.sanm else args.method
    print(f"{name}, batch {args.batch_size}, width {args.width}; "
          f"XLA_FLAGS={os.environ.get('XLA_FLAGS', '')!r}")
    print(f"median step: {1e3 * statistics.median(times):.1f} ms; "
          f"reported operations: {sum(kinds.values()):.1f} ms per step\n")
    print("| operation kind | ms per step |\n| --- | --- |")
    for name, ms in kinds.most_common(args.top):
        print(f"| {name} | {ms:.1f} |")
    return 0


if __name__ == "__main__":
    sys.exit(main())
