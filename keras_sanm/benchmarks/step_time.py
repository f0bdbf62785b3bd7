"""Median training-step time and peak memory per Keras backend, for every method with and without SANM.

PreAct ResNet-18 (or `--backbone`), 32x32x3 inputs, batch 64 (by default),
random data. One subprocess per backend (Keras fixes the backend per
process) records every variant's first step, median step and the peak
resident memory of the process during the timed steps (host RSS of the
whole process: framework, model, optimizer, step, and whatever the variants
measured before it in the same process left allocated; `memory.PeakMemory`).
The variants run in the same order on every backend (the methods in
`--methods` order, plain before SANM), so compare backends within a method.
A summary table lists them side by side:

* `ce`: the median time of a compiled CE and SANM(CE) training step, images/s,
  the ratio SANM(CE)/CE, and the time of the masking and label modulation
  alone (a compiled function of `NoisyMask` + `modulate_labels`).
* `dividemix`: the median time of one DivideMix and one SANM(DivideMix)
  training step after warm-up (B labeled + B unlabeled samples; the trained
  network's step with its peer's guesses), and the time the data side needs
  to build one batch (augmented views). The reference PyTorch code's steps
  are measured beside the package's by `benchmarks/reference_step_time.py`.
* every other method: the median time of one training step, plain and with
  SANM (Co-teaching: both networks on one batch; ELR+: one network's step
  with its peer's averaged network), and the ratio.

Every method but CE's table is measured the same way, without naming it
(`step_as_fit_runs_it`): the model's own input path builds a batch of
random uint8 images with random label quality, and the step is the one
`fit` would run on it.

    keras-sanm bench speed                               # all methods, all three backends
    keras-sanm bench speed --backbone small_cnn --steps 3  # a quick summary
    python benchmarks/step_time.py --backends jax --steps 5 --methods dividemix
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

from keras_sanm import methods
from keras_sanm.benchmarks.memory import PeakMemory


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
        phase, plan_steps, make_batch = model.epoch_plan(data, model.epochs // 2)[0]
        start = time.perf_counter()
        arrays = make_batch(plan_steps[0])
        built = time.perf_counter() - start
        return (lambda: model.train_phase_on_batch(phase, arrays)), built
    source = model.training_source(images, labels, batch, shuffle=False, verbose=0)
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
    if "ce" in methods:
        result.update(measure_ce(steps, batch, jit_compile, backbone))
    for method in methods:
        if method != "ce":
            result.update(measure_method(method, steps, batch, jit_compile, backbone))
    return result


def measure_ce(steps: int, batch: int, jit_compile="auto",
               backbone: str = "preact_resnet18") -> dict:
    import keras
    import numpy as np

    import keras_sanm
    from keras_sanm.masking import modulate_labels

    rng = np.random.default_rng(0)
    x = rng.normal(size=(batch, 32, 32, 3)).astype("float32")
    y = rng.integers(0, 10, batch).astype("int32")
    w = rng.random(batch).astype("float32")
    result = {}
    for name, sanm in (("ce", False), ("sanm_ce", True)):
        keras.utils.set_random_seed(0)
        model = keras_sanm.wrap(keras_sanm.backbones.get(backbone, 10, (32, 32, 3)), sanm=sanm, seed=0)
        model.compile(jit_compile=jit_compile)
        step = lambda: model.train_on_batch(x, y, sample_weight=w if sanm else None)  # noqa: E731
        result.update(measure_step(name, step, steps))
        result[f"{name}_images_per_s"] = batch / result[f"{name}_step_s"]

    # Masking + modulation alone, compiled like a model's predict step.
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
    onehot = np.eye(10, dtype="float32")[y]
    result["mask_and_modulation_s"] = median_time(
        lambda: mask_model.predict_on_batch([x, feats, w, onehot]), max(steps, 20)
    )
    result["sanm_over_ce"] = result["sanm_ce_step_s"] / result["ce_step_s"]
    # SANM(CE) trains on 3 images (clean, peak-masked, valley-masked) per input image.
    result["sanm_over_ce_per_trained_image"] = result["sanm_over_ce"] / 3.0
    result["mask_share_of_sanm_step"] = result["mask_and_modulation_s"] / result["sanm_ce_step_s"]
    return result


def dividemix_table(results: list[dict]) -> str:
    # (Against the reference code: benchmarks/reference_step_time.py measures both
    # on the same machine; no figure from elsewhere is compared here.)
    rows = [
        "| backend | DivideMix step (s) | SANM(DivideMix) step (s) | "
        "batch build DM / SANM-DM (s) |",
        "| --- | --- | --- | --- |",
    ]
    for r in results:
        rows.append(
            f"| {r['backend']} | {r['dividemix_step_s']:.3f} | "
            f"{r['sanm_dividemix_step_s']:.3f} | "
            f"{r['dividemix_batch_build_s']:.3f} / {r['sanm_dividemix_batch_build_s']:.3f} |"
        )
    return "\n".join(rows)


def others_table(results: list[dict]) -> str:
    names = {method: label for method, label in VARIANTS if method not in ("ce", "dividemix")}
    rows = ["| backend | method | plain step (s) | SANM step (s) | SANM/plain |",
            "| --- | --- | --- | --- | --- |"]
    for r in results:
        for method, label in names.items():
            if f"{method}_step_s" in r:
                rows.append(
                    f"| {r['backend']} | {label} | {r[f'{method}_step_s']:.3f} | "
                    f"{r[f'sanm_{method}_step_s']:.3f} | "
                    f"{r[f'sanm_{method}_over_{method}']:.2f}x |"
                )
    return "\n".join(rows)


def table(results: list[dict]) -> str:
    rows = [
        "| backend | CE step (s) | CE img/s | SANM(CE) step (s) | SANM(CE) img/s | "
        "SANM/CE | SANM/CE per trained image | mask+modulation (ms) | mask share |",
        "| --- | --- | --- | --- | --- | --- | --- | --- | --- |",
    ]
    for r in results:
        rows.append(
            f"| {r['backend']} | {r['ce_step_s']:.3f} | {r['ce_images_per_s']:.1f} | "
            f"{r['sanm_ce_step_s']:.3f} | {r['sanm_ce_images_per_s']:.1f} | "
            f"{r['sanm_over_ce']:.2f}x | {r['sanm_over_ce_per_trained_image']:.2f}x | "
            f"{1000 * r['mask_and_modulation_s']:.2f} | {r['mask_share_of_sanm_step']:.1%} |"
        )
    return "\n".join(rows)


# Every registered method, CE and DivideMix first (they have tables of their own:
# SANM(CE)'s masking share, DivideMix against the reference code).
VARIANTS = tuple(
    (name, methods.get(name).label)
    for name in ("ce", "dividemix", *(n for n in methods.names() if n not in ("ce", "dividemix")))
)


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
    parser = argparse.ArgumentParser(prog="keras-sanm bench speed", description=__doc__,
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
            [sys.executable, "-m", "keras_sanm.benchmarks.step_time", "--child",
             "--steps", str(args.steps), "--batch-size", str(args.batch_size),
             "--methods", args.methods, "--jit-compile", args.jit_compile,
             "--backbone", args.backbone],
            env=env, capture_output=True, text=True,
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
    if "ce_step_s" in results[0]:
        print(table(results))
    if "dividemix_step_s" in results[0]:
        print()
        print(dividemix_table(results))
    if any(f"{m}_step_s" in results[0] for m, _ in VARIANTS if m not in ("ce", "dividemix")):
        print()
        print(others_table(results))
    if args.output:
        with open(args.output, "w") as f:
            json.dump(results, f, indent=1)
    return 0


if __name__ == "__main__":
    sys.exit(main())
