"""Kernel memory order (PyTorch), fused batch normalisation (TensorFlow) and
stored convolution operands (JAX): steps before and after.

Two costs a profile of the CE step found outside the convolutions:

* PyTorch: Keras keeps a convolution kernel as `(h, w, in, out)` and its
  torch backend permutes it to `(out, in, h, w)` in every call, so the
  convolution copies the whole kernel in the forward pass, and again for
  the backward pass and the gradient (3 copies per kernel per pass, 8% of
  a CE step). `NativeKernelConv2D` stores the kernel in PyTorch's order
  (same shape and values), and the optimizer's momentum follows it.
* TensorFlow: Keras' batch normalisation is separate element-wise passes
  for the moments, the normalisation and their gradients;
  `FusedBatchNormalization` uses TensorFlow's fused kernel in training
  steps (PyTorch's already did).
* JAX on a CPU: XLA computes each kernel gradient from transposed copies
  of the convolution's input and output gradient, and fuses the batch
  normalisation and ReLU around the convolution into those copies,
  recomputing them in the transposed order. The backbones' convolutions
  pass their input and output through `keras_sanm.backend.materialized`
  in training, so the copies read stored values.

This script builds the package's training steps (`wrap(...)` as `fit` runs
them, PreAct ResNet-18, `compile()` defaults) twice with the same weights
and batches, "before" (kernels in Keras' order; Keras' batch normalisation
on TensorFlow; convolution operands left to XLA's fusion on JAX) and
"after" (the defaults), and alternates them in one process.

    KERAS_BACKEND=torch python benchmarks/kernel_paths.py --rounds 3
    KERAS_BACKEND=tensorflow python benchmarks/kernel_paths.py --rounds 3 --methods ce,dividemix
    KERAS_BACKEND=jax python benchmarks/kernel_paths.py --rounds 3 --methods ce,dividemix
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import time

# Run as `python benchmarks/kernel_paths.py`: the repository root holds `benchmarks.harness`.
sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

VARIANTS = ("before", "after")


def build_steps(name: str, batch: int, width: int) -> dict:
    """`(variant -> step(), variant -> model)` for one method, the same weights in both builds."""
    import keras
    import numpy as np

    import keras_sanm
    from benchmarks.harness.step_time import step_as_fit_runs_it
    from keras_sanm.backbones import PreActResNet18
    from keras_sanm.backbones import layers as backbone_layers

    rng = np.random.default_rng(0)
    images = rng.integers(0, 256, (4 * batch, 32, 32, 3), dtype=np.uint8)
    labels = rng.integers(0, 10, len(images))
    sanm = name.startswith("sanm_")
    method = name[len("sanm_"):] if sanm else name
    store = backbone_layers.store_conv_kernel_natively
    steps, models, weights = {}, {}, None
    for variant in VARIANTS:
        keras.utils.set_random_seed(0)
        if variant == "before":
            backbone_layers.store_conv_kernel_natively = lambda variable: None
        try:
            model = keras_sanm.wrap(PreActResNet18(10, width=width), method=method,
                                    sanm=sanm, seed=0)
        finally:
            backbone_layers.store_conv_kernel_natively = store
        model.compile()
        weights = model.get_weights() if weights is None else weights
        model.set_weights(weights)
        steps[variant] = step_as_fit_runs_it(model, images, labels, batch,
                                             np.random.default_rng(1))[0]
        models[variant] = model
    return steps, models


def measure(methods: list[str], rounds: int, batch: int, width: int) -> list[dict]:
    import keras

    from keras_sanm.backbones import layers as backbone_layers

    fused, materialized = backbone_layers.fused_batch_norm, backbone_layers.materialized
    keras_bn_before = keras.backend.backend() == "tensorflow"
    rows = []
    for name in methods:
        steps, _ = build_steps(name, batch, width)

        def run(variant):
            # (Read when a step is traced: TensorFlow and JAX trace at the first call.)
            before = variant == "before"
            backbone_layers.fused_batch_norm = (
                (lambda *args: None) if before and keras_bn_before else fused)
            backbone_layers.materialized = (
                (lambda x, decided_by=None: x) if before else materialized)
            try:
                start = time.perf_counter()
                steps[variant]()
                return time.perf_counter() - start
            finally:
                backbone_layers.fused_batch_norm = fused
                backbone_layers.materialized = materialized

        for variant in VARIANTS:
            run(variant)  # builds / compiles
        times = {v: [] for v in VARIANTS}
        for _ in range(rounds):
            for variant in VARIANTS:
                times[variant].append(run(variant))
        medians = {v: statistics.median(times[v]) for v in VARIANTS}
        rows.append({"step": name, **medians, "ratio": medians["before"] / medians["after"]})
        print(f"| {name} | {medians['before']:.3f} | {medians['after']:.3f} | "
              f"{rows[-1]['ratio']:.2f}x |", flush=True)
    return rows


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--methods", default="ce,dividemix,sanm_dividemix")
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--batch-size", type=int, default=64)
    parser.add_argument("--width", type=int, default=64)
    args = parser.parse_args(argv)
    import keras

    print(f"{keras.backend.backend()}: package steps, PreAct ResNet-18 width {args.width}, "
          f"batch {args.batch_size}, medians of {args.rounds} alternated rounds (seconds)\n")
    print("| step | before | after | before / after |\n| --- | --- | --- | --- |")
    measure(args.methods.split(","), args.rounds, args.batch_size, args.width)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
