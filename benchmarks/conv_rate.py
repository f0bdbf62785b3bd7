"""How fast each Keras backend runs PreAct ResNet-18's convolutions on this CPU.

Times a training pass (forward + backward to the input and the kernel) of
single 3x3 convolutions at the shapes of PreAct ResNet-18's four stages
(batch 128, 32x32x64 down to 4x4x512), compiled as the training step is
(JAX: `jax.jit`; TensorFlow: `tf.function`; torch: eager, channels-first as
the package's backbones run there), and reports GFLOP/s against the
machine's float32 matmul rate (`cpu_peak.py`). A backend whose
convolution kernels run at a small fraction of the matmul rate cannot
match a step that spends most of its work in convolutions, whatever the
package does around them.

    python benchmarks/conv_rate.py --rounds 5
"""

from __future__ import annotations

import argparse
import statistics
import time

from child_process import child_result, print_result

# (spatial size, channels) of the 3x3 stride-1 convolutions of each stage.
STAGES = ((32, 64), (16, 128), (8, 256), (4, 512))


def measure(rounds: int, batch: int) -> dict:
    import keras
    import numpy as np
    from keras import ops

    from keras_sanm.backend import CONV_DATA_FORMAT, gradients

    backend = keras.backend.backend()
    rng = np.random.default_rng(0)
    # Per stage: floating-point operations and median seconds behind each rate.
    result = {"backend": backend, "data_format": CONV_DATA_FORMAT, "work": {}, "seconds": {}}
    total_flop, total_s = 0.0, 0.0
    for size, channels in STAGES:
        first = CONV_DATA_FORMAT == "channels_first"
        shape = (batch, channels, size, size) if first else (batch, size, size, channels)
        layer = keras.layers.Conv2D(channels, 3, padding="same", use_bias=False,
                                    data_format=CONV_DATA_FORMAT)
        layer.build(shape)
        x = keras.Variable(rng.normal(size=shape).astype("float32"))

        def loss():
            return ops.sum(ops.square(layer(x)))

        if backend == "jax":
            import jax

            def pure(kernel, inputs):
                out = keras.ops.conv(inputs, kernel, padding="same",
                                     data_format=CONV_DATA_FORMAT)
                return jax.numpy.sum(out * out)

            grad = jax.jit(jax.grad(pure, argnums=(0, 1)))
            kernel, inputs = layer.kernel.value, x.value

            def run():
                jax.block_until_ready(grad(kernel, inputs))
        elif backend == "tensorflow":
            import tensorflow as tf

            @tf.function(jit_compile=False)
            def step():
                with tf.GradientTape() as tape:
                    value = loss()
                return tape.gradient(value, [layer.kernel.value, x.value])

            def run():
                [g.numpy() for g in step()]
        else:
            def run():
                [ops.convert_to_numpy(g) for g in gradients(loss, [layer.kernel, x])]

        run()
        times = []
        for _ in range(rounds):
            start = time.perf_counter()
            run()
            times.append(time.perf_counter() - start)
        seconds = statistics.median(times)
        # forward, gradient to the input, gradient to the kernel: 3 x 2 * MACs
        flop = 3 * 2 * batch * size * size * channels * channels * 9
        result[f"{size}x{size}x{channels}"] = flop / seconds / 1e9
        result["work"][f"{size}x{size}x{channels}"] = flop
        result["seconds"][f"{size}x{size}x{channels}"] = seconds
        total_flop += flop
        total_s += seconds
    result["all_gflops"] = total_flop / total_s / 1e9
    return result


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--backends", default="torch,tensorflow,jax")
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--batch-size", type=int, default=128)
    parser.add_argument("--child", action="store_true", help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.child:
        print_result(measure(args.rounds, args.batch_size))
        return 0
    from cpu_peak import matmul_gflops

    peak = matmul_gflops()
    names = [f"{s}x{s}x{c}" for s, c in STAGES]
    print(f"float32 matmul: {peak:.1f} GFLOP/s. 3x3 convolution training passes, batch "
          f"{args.batch_size}, GFLOP/s (share of the matmul rate):\n")
    print(f"| backend (layout) | {' | '.join(names)} | all four |\n"
          f"| --- |{' --- |' * (len(names) + 1)}")
    for backend in args.backends.split(","):
        r = child_result(__file__, backend, ["--rounds", str(args.rounds),
                                             "--batch-size", str(args.batch_size)])
        cells = [f"{r[n]:.0f} ({r[n] / peak:.0%})" for n in names + ["all_gflops"]]
        print(f"| {backend} ({r['data_format']}) | {' | '.join(cells)} |", flush=True)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
