"""Median training-step time and peak memory per Keras backend, for every method with and without SANM.

PreAct ResNet-18 (or `--backbone`), 32x32x3 inputs, batch 64 (by default),
random data. One subprocess per backend (Keras fixes the backend per
process) records every variant's first step, median step and the peak
resident memory of the process during the timed steps (host RSS of the
whole process: framework, model, optimizer, step, and whatever the variants
measured before it in the same process left allocated; `memory.PeakMemory`).
The variants run in the same order on every backend (the methods in
`--methods` order, plain before SANM), so compare backends within a method.
Every method is measured the same way, without naming it, from what the
method registry (`keras_sanm.methods`) declares (`step_as_fit_runs_it`):
the model's own input path builds a batch of random uint8 images with random
label quality (so SANM draws boxes of every size and DivideMix splits the
data), timed as the data side's batch build, and the step is the one `fit`
would run on it (Co-teaching: both networks on one batch; DivideMix and ELR+:
one network's step with its peer's guesses or averaged network). The option
the reference sets to the noise rate is 0.5. Two tables:

* step time and peak memory, plain and with SANM, per method and backend;
* per method and backend: the SANM/plain step ratio, the batch build time,
  and the share of the SANM step that SANM's masking and label modulation
  alone take (a compiled function of `NoisyMask` + `modulate_labels`,
  measured once per backend).

The reference PyTorch code's DivideMix steps are measured beside the
package's by `benchmarks/reference_step_time.py`.

    python -m benchmarks speed                               # all methods, all three backends
    python -m benchmarks speed --backbone small_cnn --steps 3  # a quick summary
    python -m benchmarks speed --backends jax --steps 5 --methods dividemix
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import statistics
import subprocess
import sys
import time

from benchmarks.harness.memory import PeakMemory
from keras_sanm import methods

REPOSITORY = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))


def median_time(fn, steps: int, warmup: int = 2) -> float:
    """Median seconds of `steps` calls of `fn` after `warmup` untimed calls."""
    for _ in range(warmup):
        fn()
    times = []
    for _ in range(steps):
        start = time.perf_counter()
        fn()
        times.append(time.perf_counter() - start)
    return statistics.median(times)


def measure_step(name: str, step, steps: int) -> dict:
    """First-call time, median step time and peak memory of `step`, keyed by `name`."""
    start = time.perf_counter()
    step()
    first = time.perf_counter() - start
    step()  # one more untimed call, so the peak is of steady-state steps
    with PeakMemory() as memory:
        seconds = median_time(step, steps, warmup=0)
    return {f"{name}_first_step_s": first, f"{name}_step_s": seconds,
            f"{name}_peak_rss_mib": memory.peak_mib, f"{name}_step_memory_mib": memory.extra_mib}


def step_as_fit_runs_it(model, images, labels, batch: int, rng):
    """`(step, build_seconds)`: one training step on `images` as `fit` would run it.

    No method is named: the data goes through the model's own input path
    (`training_data` and the first phase of a mid-run epoch's plan for
    methods whose networks take turns, else `training_source` and its first
    batch), every sample gets a random label quality (so SANM draws boxes of
    every size and DivideMix splits the data), and the batch is built once,
    timed (`build_seconds`: augmentation and views on the data side).
    """
    if hasattr(model, "epoch_plan"):
        data = model.training_data(images, labels, batch, verbose=0)
        data.label_quality[:] = rng.random(data.label_quality.shape)
        phase, plan_steps, make_batch = model.epoch_plan(data, model.reference_epochs // 2)[0]
        start = time.perf_counter()
        arrays = make_batch(plan_steps[0])
        built = time.perf_counter() - start
        return (lambda: model.train_phase_on_batch(phase, arrays)), built
    source = model.training_data(images, labels, batch, False, verbose=0)
    source.label_quality[:] = rng.random(source.label_quality.shape)
    start = time.perf_counter()
    batch = source[0]  # (images, labels, quality), or a method's own (dict,)
    built = time.perf_counter() - start
    return (lambda: model.train_on_batch(*batch)), built


def measure_method(method: str, steps: int, batch: int, jit_compile="auto",
                   backbone: str = "preact_resnet18") -> dict:
    """Step time of `method`, plain then with SANM, on 4 batches of random uint8 images.

    The option the reference sets to the noise rate (Co-teaching's forget
    rate, CDR's tau) is 0.5; every other option is the method's default.
    """
    import keras
    import numpy as np

    import keras_sanm
    from keras_sanm import methods

    rng = np.random.default_rng(0)
    images = rng.integers(0, 256, (4 * batch, 32, 32, 3), dtype=np.uint8)
    labels = rng.integers(0, 10, len(images))
    option = methods.get(method).noise_rate_option
    options = {option: 0.5} if option else {}
    result = {}
    for sanm in (False, True):
        name = f"sanm_{method}" if sanm else method
        keras.utils.set_random_seed(0)
        model = keras_sanm.wrap(keras_sanm.backbones.get(backbone, 10, (32, 32, 3)),
                                method=method, sanm=sanm, seed=0, **options)
        model.compile(jit_compile=jit_compile)
        step, result[f"{name}_batch_build_s"] = step_as_fit_runs_it(
            model, images, labels, batch, rng)
        result.update(measure_step(name, step, steps))
    result[f"sanm_{method}_over_{method}"] = result[f"sanm_{method}_step_s"] / result[f"{method}_step_s"]
    return result


def measure(steps: int, batch: int, methods=("ce", "dividemix"), jit_compile="auto",
            backbone: str = "preact_resnet18") -> dict:
    import keras

    result = {"backend": keras.backend.backend(), "batch": batch, "steps": steps,
              "jit_compile": jit_compile, "backbone": backbone}
    for method in methods:
        result.update(measure_method(method, steps, batch, jit_compile, backbone))
    result["mask_and_modulation_s"] = measure_masking(steps, batch, backbone)
    return result


def measure_masking(steps: int, batch: int, backbone: str = "preact_resnet18") -> float:
    """Median seconds of SANM's masking and label modulation alone (no network step),
    compiled like a model's predict step, on random features and label quality."""
    import keras
    import numpy as np

    import keras_sanm
    from keras_sanm.sanm.masking import modulate_labels

    rng = np.random.default_rng(0)
    x = rng.normal(size=(batch, 32, 32, 3)).astype("float32")
    quality_values = rng.random(batch).astype("float32")
    images = keras.Input((32, 32, 3), batch_size=batch)
    feature_shape = tuple(keras_sanm.backbones.get(backbone, 10, (32, 32, 3))
                          .get_layer("feature_map").output.shape[1:])
    features = keras.Input(feature_shape, batch_size=batch)
    quality = keras.Input((), batch_size=batch)
    targets = keras.Input((10,), batch_size=batch)
    masked = keras_sanm.NoisyMask(seed=0)(images, features, quality)
    outputs = [masked["peak_images"], masked["valley_images"],
               modulate_labels(targets, masked["peak_ratio"])]
    mask_model = keras.Model([images, features, quality, targets], outputs)
    feats = rng.normal(size=(batch, *feature_shape)).astype("float32")
    onehot = np.eye(10, dtype="float32")[rng.integers(0, 10, batch)]
    return median_time(
        lambda: mask_model.predict_on_batch([x, feats, quality_values, onehot]), max(steps, 20))


def sanm_table(results: list[dict]) -> str:
    """Per method and backend: what SANM adds to a step, and the data side's batch build."""
    rows = ["| method | backend | SANM/plain step | batch build plain / SANM (s) | "
            "masking share of the SANM step |",
            "| --- | --- | --- | --- | --- |"]
    for method, label in VARIANTS:
        for r in results:
            if f"{method}_step_s" not in r:
                continue
            sanm = f"sanm_{method}"
            rows.append(
                f"| {label} | {r['backend']} | {r[f'{sanm}_over_{method}']:.2f}x | "
                f"{r[f'{method}_batch_build_s']:.3f} / {r[f'{sanm}_batch_build_s']:.3f} | "
                f"{r['mask_and_modulation_s'] / r[f'{sanm}_step_s']:.1%} |")
    return "\n".join(rows)


# Every registered method, in the registry's order.
VARIANTS = tuple((name, methods.get(name).label) for name in methods.names())


def _mib(value) -> str:
    return "–" if value is None else f"{value:.0f}"


def speed_table(results: list[dict]) -> str:
    """One row per method and backend: step time and peak memory, plain and with SANM."""
    rows = ["| method | backend | step (s) | SANM step (s) | peak RSS (MiB) | SANM peak RSS (MiB) |",
            "| --- | --- | --- | --- | --- | --- |"]
    for method, label in VARIANTS:
        for r in results:
            if f"{method}_step_s" not in r:
                continue
            plain, sanm = method, f"sanm_{method}"
            rows.append(
                f"| {label} | {r['backend']} | {r[f'{plain}_step_s']:.3f} | "
                f"{r[f'{sanm}_step_s']:.3f} | {_mib(r[f'{plain}_peak_rss_mib'])} | "
                f"{_mib(r[f'{sanm}_peak_rss_mib'])} |")
    return "\n".join(rows)


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(prog="python -m benchmarks speed", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--backends", default="jax,torch,tensorflow")
    parser.add_argument("--steps", type=int, default=10)
    parser.add_argument("--batch-size", type=int, default=64)
    parser.add_argument("--methods", default=",".join(m for m, _ in VARIANTS))
    parser.add_argument("--backbone", default="preact_resnet18",
                        help="keras_sanm.backbones name (the reference figures are for preact_resnet18)")
    parser.add_argument("--jit-compile", default="auto", choices=("auto", "true", "false"),
                        help="compile(jit_compile=...); Keras' auto skips XLA for TensorFlow on CPU")
    parser.add_argument("--output", default=None, help="write the results as JSON here")
    parser.add_argument("--child", action="store_true", help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    methods = tuple(args.methods.split(","))
    unknown = sorted(set(methods) - {m for m, _ in VARIANTS})
    if unknown:
        raise SystemExit(f"--methods: unknown {unknown}; choose from {[m for m, _ in VARIANTS]}.")
    if args.child:
        jit = {"auto": "auto", "true": True, "false": False}[args.jit_compile]
        print("RESULT " + json.dumps(
            measure(args.steps, args.batch_size, methods, jit, args.backbone)))
        return 0
    results = []
    for backend in args.backends.split(","):
        print(f"measuring {backend} ...", flush=True)
        env = dict(os.environ, KERAS_BACKEND=backend)
        proc = subprocess.run(
            [sys.executable, "-m", "benchmarks.harness.step_time", "--child",
             "--steps", str(args.steps), "--batch-size", str(args.batch_size),
             "--methods", args.methods, "--jit-compile", args.jit_compile,
             "--backbone", args.backbone],
            env=env, capture_output=True, text=True,
            cwd=REPOSITORY,  # where `benchmarks.harness` is importable
        )
        lines = [line for line in proc.stdout.splitlines() if line.startswith("RESULT ")]
        if proc.returncode or not lines:
            print(proc.stderr[-3000:], file=sys.stderr)
            return 1
        results.append(json.loads(lines[-1][len("RESULT "):]))
    print(f"\n{platform.processor() or platform.machine()}, {os.cpu_count()} cores, "
          f"{args.backbone}, batch {args.batch_size}, median of {args.steps} steps, "
          f"jit_compile={args.jit_compile}\n")
    print(speed_table(results) + "\n")
    print(sanm_table(results))
    if args.output:
        with open(args.output, "w") as f:
            json.dump(results, f, indent=1)
    return 0


if __name__ == "__main__":
    sys.exit(main())
