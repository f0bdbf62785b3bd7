"""Median training-step time of CE and SANM(CE) per Keras backend.

PreAct ResNet-18, 32x32x3 inputs, batch 64 (by default), random data. For each
backend (one subprocess each, since Keras fixes the backend per process) it
reports the median time of a compiled training step, images/s, the ratio
SANM(CE)/CE, and the time of the masking and label modulation alone (a compiled
function of `NoisyMask` + `modulate_labels` on the same batch).

    python benchmarks/step_time.py                       # all three backends
    python benchmarks/step_time.py --backends jax --steps 5
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


def _median_time(fn, steps: int, warmup: int = 2) -> float:
    for _ in range(warmup):
        fn()
    times = []
    for _ in range(steps):
        start = time.perf_counter()
        fn()
        times.append(time.perf_counter() - start)
    return statistics.median(times)


def measure(steps: int, batch: int) -> dict:
    import keras
    import numpy as np

    import keras_sanm
    from keras_sanm.masking import modulate_labels

    rng = np.random.default_rng(0)
    x = rng.normal(size=(batch, 32, 32, 3)).astype("float32")
    y = rng.integers(0, 10, batch).astype("int32")
    w = rng.random(batch).astype("float32")
    result = {"backend": keras.backend.backend(), "batch": batch, "steps": steps}
    for name, sanm in (("ce", False), ("sanm_ce", True)):
        keras.utils.set_random_seed(0)
        model = keras_sanm.wrap(keras_sanm.backbones.PreActResNet18(10), sanm=sanm, seed=0)
        model.compile()
        step = lambda: model.train_on_batch(x, y, sample_weight=w if sanm else None)  # noqa: E731
        start = time.perf_counter()
        step()
        result[f"{name}_first_step_s"] = time.perf_counter() - start
        result[f"{name}_step_s"] = _median_time(step, steps)
        result[f"{name}_images_per_s"] = batch / result[f"{name}_step_s"]

    # Masking + modulation alone, compiled like a model's predict step.
    images = keras.Input((32, 32, 3), batch_size=batch)
    features = keras.Input((4, 4, 512), batch_size=batch)
    quality = keras.Input((), batch_size=batch)
    targets = keras.Input((10,), batch_size=batch)
    masked = keras_sanm.NoisyMask(seed=0)(images, features, quality)
    outputs = [masked["peak_images"], masked["valley_images"],
               modulate_labels(targets, masked["peak_ratio"])]
    mask_model = keras.Model([images, features, quality, targets], outputs)
    feats = rng.normal(size=(batch, 4, 4, 512)).astype("float32")
    onehot = np.eye(10, dtype="float32")[y]
    result["mask_and_modulation_s"] = _median_time(
        lambda: mask_model.predict_on_batch([x, feats, w, onehot]), max(steps, 20)
    )
    result["sanm_over_ce"] = result["sanm_ce_step_s"] / result["ce_step_s"]
    # SANM(CE) trains on 3 images (clean, peak-masked, valley-masked) per input image.
    result["sanm_over_ce_per_trained_image"] = result["sanm_over_ce"] / 3.0
    result["mask_share_of_sanm_step"] = result["mask_and_modulation_s"] / result["sanm_ce_step_s"]
    return result


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


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--backends", default="jax,torch,tensorflow")
    parser.add_argument("--steps", type=int, default=10)
    parser.add_argument("--batch-size", type=int, default=64)
    parser.add_argument("--output", default=None, help="write the results as JSON here")
    parser.add_argument("--child", action="store_true", help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.child:
        print("RESULT " + json.dumps(measure(args.steps, args.batch_size)))
        return 0
    results = []
    for backend in args.backends.split(","):
        print(f"measuring {backend} ...", flush=True)
        env = dict(os.environ, KERAS_BACKEND=backend)
        proc = subprocess.run(
            [sys.executable, __file__, "--child", "--steps", str(args.steps),
             "--batch-size", str(args.batch_size)],
            env=env, capture_output=True, text=True,
        )
        lines = [l for l in proc.stdout.splitlines() if l.startswith("RESULT ")]
        if proc.returncode or not lines:
            print(proc.stderr[-3000:], file=sys.stderr)
            return 1
        results.append(json.loads(lines[-1][len("RESULT "):]))
    print(f"\n{platform.processor() or platform.machine()}, {os.cpu_count()} cores, "
          f"batch {args.batch_size}, median of {args.steps} steps\n")
    print(table(results))
    if args.output:
        with open(args.output, "w") as f:
            json.dump(results, f, indent=1)
    return 0


if __name__ == "__main__":
    sys.exit(main())
