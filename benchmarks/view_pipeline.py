"""SANM(DivideMix)'s six training views per sample: the host pipeline against the device path.

A SANM(DivideMix) step trains on B labeled and B unlabeled samples with six
views each (AutoAugment x4, RandAugment + Cutout x2): `12 B` augmented
images per step. This measures, on one machine and alternating the sides:

* host: `CoDivideData.training_batch` (NumPy crops, Pillow operations one
  image at a time, on the thread that feeds the step, as `fit` runs it);
* device: `keras_sanm.methods.dividemix.device_views.training_views` on the `2B` raw images,
  compiled as the step is (JAX: `jax.jit`, TensorFlow: `tf.function`,
  torch: eager), per backend, on whatever device the backend uses.

It prints images per second of each, and the step time each would allow:
a step that runs faster than the views arrive waits on them.

    python benchmarks/view_pipeline.py                          # all three backends
    python benchmarks/view_pipeline.py --backends jax --rounds 7 --batch-size 64
"""

from __future__ import annotations

import argparse
import statistics
import time

import numpy as np

from child_process import child_result, print_result

VIEWS_PER_SAMPLE = 6


def _images(count: int, seed: int = 0) -> np.ndarray:
    """CIFAR-like 32x32 uint8 images (smooth colour fields with texture)."""
    rng = np.random.default_rng(seed)
    coarse = np.repeat(np.repeat(rng.uniform(0, 255, (count, 4, 4, 3)), 8, 1), 8, 2)
    return np.clip(coarse + rng.normal(0, 12, coarse.shape), 0, 255).astype(np.uint8)


def host_seconds(batch_size: int, rounds: int) -> list[float]:
    """Seconds of `CoDivideData.training_batch` for one SANM(DivideMix) step, per round."""
    from keras_sanm.data import CoDivideData
    from keras_sanm.methods.dividemix.trainers import STRONG_VIEWS

    images = _images(4 * batch_size)
    data = CoDivideData(images, np.arange(len(images)) % 10, batch_size=batch_size,
                        views=STRONG_VIEWS, seed=0)
    data.label_quality[:] = np.linspace(0, 1, len(images))[:, None]
    step = data.training_plan(0, 0.5, 20)[0]
    times = []
    for _ in range(rounds):
        start = time.perf_counter()
        data.training_batch(0, step)
        times.append(time.perf_counter() - start)
    return times


def measure(batch_size: int, rounds: int) -> dict:
    import keras
    from keras import ops

    from keras_sanm.backend import device_kind
    from keras_sanm.methods.dividemix import device_views
    from keras_sanm.methods.dividemix.trainers import STRONG_VIEWS

    backend = keras.backend.backend()
    seed = keras.random.SeedGenerator(0)
    raw = ops.convert_to_tensor(_images(2 * batch_size))

    def draw(images):
        return ops.stack(device_views.training_views(images, STRONG_VIEWS, seed), axis=1)

    if backend == "jax":
        import jax

        @jax.jit
        def stateless(images, state):
            with keras.StatelessScope(state_mapping=[(seed.state, state)]) as scope:
                out = draw(images)
            return out, scope.get_current_value(seed.state)

        state = seed.state.value

        def device(images):
            nonlocal state
            out, state = stateless(images, state)
            return jax.block_until_ready(out)
    elif backend == "tensorflow":
        import tensorflow as tf

        device = tf.function(draw, jit_compile=False)
    else:
        device = draw
    views = ops.convert_to_numpy(device(raw))  # compile
    host_seconds(batch_size, 1)  # warm Pillow
    times = {"host": [], "device": []}
    for _ in range(rounds):  # alternated
        times["host"] += host_seconds(batch_size, 1)
        start = time.perf_counter()
        ops.convert_to_numpy(device(raw)[-1])
        times["device"].append(time.perf_counter() - start)
    images = 2 * batch_size * VIEWS_PER_SAMPLE
    return {"backend": backend, "device_kind": device_kind(), "images_per_step": images,
            "device_images": int(views.shape[0] * views.shape[1]),
            "rounds": {side: len(seconds) for side, seconds in times.items()},
            "host_s": statistics.median(times["host"]),
            "device_s": statistics.median(times["device"])}


def table_row(backend: str, r: dict) -> str:
    """One backend's row of the table: times, images per second and their ratio."""
    n = r["images_per_step"]
    return (f"| {backend} ({r['device_kind']}) | {n} | {r['host_s']:.3f} | "
            f"{n / r['host_s']:,.0f} | {r['device_s']:.3f} | {n / r['device_s']:,.0f} | "
            f"{r['host_s'] / r['device_s']:.2f}x |")


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--backends", default="torch,tensorflow,jax")
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--batch-size", type=int, default=64)
    parser.add_argument("--child", action="store_true", help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.child:
        print_result(measure(args.batch_size, args.rounds))
        return 0
    print(f"SANM(DivideMix) views of one step: B = {args.batch_size} labeled + "
          f"{args.batch_size} unlabeled samples x {VIEWS_PER_SAMPLE} views; medians of "
          f"{args.rounds} alternated rounds.\n")
    print("| backend (device) | images per step | host pipeline (s) | host images/s | "
          "device views (s) | device images/s | host / device |\n"
          "| --- | --- | --- | --- | --- | --- | --- |")
    for backend in args.backends.split(","):
        r = child_result(__file__, backend, ["--rounds", str(args.rounds),
                                             "--batch-size", str(args.batch_size)])
        print(table_row(backend, r), flush=True)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
