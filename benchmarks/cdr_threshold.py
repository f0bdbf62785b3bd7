"""CDR's gradient mask: the threshold by radix selection against a full sort.

CDR keeps the gradient of the `(1 - tau) N` kernel entries with the largest
`|w * g|` and needs the threshold value every step. This times
`critical_gradient_mask` on PreAct ResNet-18's kernels (11.2 M entries,
random weights and gradients) with the package's threshold
(`order_statistics.kth_largest`, two counting passes) and with the earlier
one (`ops.sort` of all entries), alternating the two within one process per
backend, compiled as the training step is (JAX: `jax.jit`, TensorFlow:
`tf.function` with XLA off as `compile()`'s default on CPU, torch: eager).
Both give the same mask (checked). Prints medians and the ratio.

    python benchmarks/cdr_threshold.py                      # all three backends
    python benchmarks/cdr_threshold.py --backends torch --rounds 7
"""

from __future__ import annotations

import argparse
import statistics
import time

from child_process import child_result, print_result


def sort_threshold_mask(gradients, values, noise_rate):
    """The earlier rule: the same mask, its threshold from a sort of every entry."""
    from keras import ops

    importance = [ops.abs(v * g) for g, v in zip(gradients, values)]
    pooled = ops.concatenate([ops.reshape(i, (-1,)) for i in importance], axis=0)
    total = int(pooled.shape[0])
    keep = max(int((1.0 - noise_rate) * total), 1)
    threshold = ops.sort(pooled)[total - keep]
    return [g * ops.cast(ops.greater_equal(i, threshold), g.dtype) * (1.0 - noise_rate)
            for g, i in zip(gradients, importance)]


def compiled(backend, fn):
    if backend == "jax":
        import jax

        jitted = jax.jit(fn)
        return lambda *a: jax.block_until_ready(jitted(*a))
    if backend == "tensorflow":
        import tensorflow as tf

        return tf.function(fn, jit_compile=False)
    return fn


def measure(rounds: int, noise_rate: float) -> dict:
    import keras
    import numpy as np
    from keras import ops

    from keras_sanm.backbones import PreActResNet18
    from keras_sanm.methods.cdr.trainers import critical_gradient_mask

    backend = keras.backend.backend()
    model = PreActResNet18(10)
    kernels = [v for v in model.trainable_variables if len(v.shape) >= 2]
    rng = np.random.default_rng(0)
    values = [ops.convert_to_tensor(ops.convert_to_numpy(v)) for v in kernels]
    gradients = [ops.convert_to_tensor(rng.normal(size=v.shape).astype("float32"))
                 for v in kernels]
    package = compiled(backend, lambda g, v: critical_gradient_mask(g, v, noise_rate))
    earlier = compiled(backend, lambda g, v: sort_threshold_mask(g, v, noise_rate))
    same = all(np.array_equal(ops.convert_to_numpy(a), ops.convert_to_numpy(b))
               for a, b in zip(package(gradients, values), earlier(gradients, values)))
    times = {"radix": [], "sort": []}
    for _ in range(rounds):  # alternated, after the calls above compiled both
        for name, fn in (("radix", package), ("sort", earlier)):
            start = time.perf_counter()
            out = fn(gradients, values)
            ops.convert_to_numpy(out[-1])
            times[name].append(time.perf_counter() - start)
    return {"backend": backend, "entries": int(sum(np.prod(v.shape) for v in kernels)),
            "same_mask": same, "radix_s": statistics.median(times["radix"]),
            "sort_s": statistics.median(times["sort"])}


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--backends", default="torch,tensorflow,jax")
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--noise-rate", type=float, default=0.5)
    parser.add_argument("--child", action="store_true", help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.child:
        print_result(measure(args.rounds, args.noise_rate))
        return 0
    print("| backend | kernel entries | sort (s) | radix selection (s) | sort / radix | "
          "same mask |\n| --- | --- | --- | --- | --- | --- |")
    for backend in args.backends.split(","):
        r = child_result(__file__, backend, ["--rounds", str(args.rounds),
                                             "--noise-rate", str(args.noise_rate)])
        print(f"| {backend} | {r['entries']:,} | {r['sort_s']:.3f} | {r['radix_s']:.3f} | "
              f"{r['sort_s'] / r['radix_s']:.2f}x | {'yes' if r['same_mask'] else 'NO'} |",
              flush=True)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
