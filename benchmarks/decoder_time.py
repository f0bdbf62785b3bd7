"""Forward + backward time of the reconstruction decoder, native vs sub-pixel.

The reference decoder (4x4x512 -> 32x32x3) on a batch of feature maps, both
ways of computing its transposed convolutions (`keras_sanm.sanm.transposed_conv`),
per Keras backend (one subprocess each). The gradient is taken with respect
to the input and all decoder weights of a mean squared error.

    python benchmarks/decoder_time.py                    # all three backends
    python benchmarks/decoder_time.py --backends jax --batch-size 128
"""

from __future__ import annotations

import argparse

from step_time import median_time

from child_process import child_result, print_result


def measure(batch: int, steps: int) -> dict:
    import keras
    import numpy as np

    from keras_sanm.sanm.decoder import ReconstructionDecoder

    backend = keras.backend.backend()
    rng = np.random.default_rng(0)
    features = rng.normal(size=(batch, 4, 4, 512)).astype("float32")
    target = rng.normal(size=(batch, 32, 32, 3)).astype("float32")
    result = {"backend": backend, "batch": batch}
    for implementation in ("native", "subpixel"):
        decoder = ReconstructionDecoder((32, 32, 3), implementation=implementation)
        decoder.build((None, 4, 4, 512))
        run = _gradient_function(backend, decoder, features, target)
        result[f"{implementation}_s"] = median_time(run, steps, warmup=1)
    return result


def _gradient_function(backend, decoder, features, target):
    """A compiled (JAX/TF) or eager (torch) forward + backward of the decoder."""
    import keras
    from keras import ops

    variables = decoder.trainable_variables

    def loss_of(values, x):
        mapping = list(zip(variables, values))
        with keras.StatelessScope(state_mapping=mapping):
            return ops.mean(ops.square(decoder(x) - target))

    values = [v.value for v in variables]
    if backend == "jax":
        import jax

        grad = jax.jit(jax.grad(loss_of, argnums=(0, 1)))
        return lambda: jax.block_until_ready(grad(values, features))
    if backend == "tensorflow":
        import tensorflow as tf

        @tf.function
        def tf_grad(x):
            with tf.GradientTape() as tape:
                tape.watch(x)
                loss = ops.mean(ops.square(decoder(x) - target))
            return tape.gradient(loss, [x] + [v.value for v in variables])

        x = tf.constant(features)
        return lambda: tf_grad(x)
    import torch

    def run():
        x = torch.tensor(features, requires_grad=True)
        loss = ops.mean(ops.square(decoder(x) - torch.tensor(target)))
        loss.backward()

    return run


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--backends", default="jax,torch,tensorflow")
    parser.add_argument("--batch-size", type=int, default=128)
    parser.add_argument("--steps", type=int, default=3)
    parser.add_argument("--child", action="store_true", help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.child:
        print_result(measure(args.batch_size, args.steps))
        return 0
    print(f"| backend | native (s) | sub-pixel (s) | batch {args.batch_size}, "
          f"median of {args.steps} |\n| --- | --- | --- | --- |")
    for backend in args.backends.split(","):
        r = child_result(__file__, backend, ["--batch-size", str(args.batch_size),
                                             "--steps", str(args.steps)])
        print(f"| {backend} | {r['native_s']:.3f} | {r['subpixel_s']:.3f} | |")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
