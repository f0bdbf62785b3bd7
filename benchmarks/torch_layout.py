"""Keras on PyTorch: PreAct ResNet-18 channels-last against channels-first, and fused batch norm.

Keras' default layout is channels-last; PyTorch's convolutions are
channels-first, so every Keras convolution on the torch backend copies its
input and output between layouts, and Keras' batch normalisation on torch
is about ten element-wise passes. Two measurements, alternating the sides
within one process:

* `--mode network` (default): a plain Keras PreAct ResNet-18 (Keras
  layers only), forward + backward of one batch in each layout, with the
  top operations of one profiled pass per layout (`torch.profiler`):
  `aten::copy_` are the layout copies, `aten::mul`/`sum`/`add_`/`div` the
  element-wise batch normalisation.
* `--mode steps`: the package's training steps (`wrap(...)` as `fit` runs
  them) of `--methods` on `keras_sanm.backbones.PreActResNet18` built three
  ways: channels-last (Keras' batch norm: the layout before this change),
  channels-first with Keras' element-wise batch norm, and channels-first
  with the fused batch norm (`FusedBatchNormalization`, the default on
  torch). Same weights and batches, so the same work on every side.

    KERAS_BACKEND=torch python benchmarks/torch_layout.py --rounds 5 --batch-size 128
    KERAS_BACKEND=torch python benchmarks/torch_layout.py --mode steps --rounds 3 \
        --methods ce,dividemix,sanm_dividemix
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import time

# Run as `python benchmarks/torch_layout.py`: the repository root holds `benchmarks.harness`.
sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

os.environ.setdefault("KERAS_BACKEND", "torch")


def preact_resnet18(data_format: str, width: int):
    import keras
    from keras import layers

    last = data_format == "channels_last"
    axis = -1 if last else 1
    inputs = keras.Input((32, 32, 3) if last else (3, 32, 32))

    def conv(x, filters, size, stride=1):
        if stride == 2 and size == 3:  # PyTorch's padding=1 on both sides
            x = layers.ZeroPadding2D(1, data_format=data_format)(x)
        return layers.Conv2D(filters, size, strides=stride, use_bias=False,
                             padding="valid" if stride == 2 or size == 1 else "same",
                             data_format=data_format)(x)

    x = conv(inputs, width, 3)
    for stage, factor in enumerate((1, 2, 4, 8)):
        for block in range(2):
            stride = 2 if stage and not block else 1
            filters = width * factor
            activated = layers.ReLU()(layers.BatchNormalization(axis=axis)(x))
            shortcut = (conv(activated, filters, 1, stride)
                        if stride != 1 or x.shape[axis] != filters else activated)
            out = conv(activated, filters, 3, stride)
            out = layers.ReLU()(layers.BatchNormalization(axis=axis)(out))
            x = layers.Add()([conv(out, filters, 3), shortcut])
    x = layers.GlobalAveragePooling2D(data_format=data_format)(x)
    return keras.Model(inputs, layers.Dense(10)(x))


STEP_VARIANTS = ("channels_last", "channels_first, element-wise BN", "channels_first, fused BN")


def measure_steps(methods: list[str], rounds: int, batch: int, width: int) -> None:
    """Median step time of each method in the three `STEP_VARIANTS`, alternated."""
    import keras
    import numpy as np

    import keras_sanm
    from keras_sanm.backbones import PreActResNet18
    from keras_sanm.backbones import layers as backbone_layers

    fused = backbone_layers.fused_batch_norm
    rng = np.random.default_rng(0)
    images = rng.integers(0, 256, (4 * batch, 32, 32, 3), dtype=np.uint8)
    labels = rng.integers(0, 10, len(images))
    print(f"| step | {' | '.join(STEP_VARIANTS)} | channels-last / fused |\n"
          f"| --- |{' --- |' * (len(STEP_VARIANTS) + 1)}")
    for name in methods:
        sanm = name.startswith("sanm_")
        method = name[len("sanm_"):] if sanm else name
        steps, weights = {}, None
        for variant in STEP_VARIANTS:
            from benchmarks.harness.step_time import step_as_fit_runs_it

            keras.utils.set_random_seed(0)
            data_format = variant.split(",")[0]
            model = keras_sanm.wrap(PreActResNet18(10, width=width, data_format=data_format),
                                    method=method, sanm=sanm, seed=0)
            model.compile()
            if weights is None:
                weights = model.get_weights()
            model.set_weights(weights)
            steps[variant] = step_as_fit_runs_it(model, images, labels, batch,
                                                 np.random.default_rng(1))[0]

        def run(variant):
            backbone_layers.fused_batch_norm = fused if "fused" in variant else (
                lambda *args: None)
            start = time.perf_counter()
            steps[variant]()
            return time.perf_counter() - start

        for variant in STEP_VARIANTS:
            run(variant)  # first steps
        times = {v: [] for v in STEP_VARIANTS}
        for _ in range(rounds):
            for variant in STEP_VARIANTS:
                times[variant].append(run(variant))
        backbone_layers.fused_batch_norm = fused
        medians = [statistics.median(times[v]) for v in STEP_VARIANTS]
        print(f"| {name} | {' | '.join(f'{m:.3f}' for m in medians)} | "
              f"{medians[0] / medians[-1]:.2f}x |", flush=True)


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--mode", choices=("network", "steps"), default="network")
    parser.add_argument("--methods", default="ce,dividemix,sanm_dividemix")
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--batch-size", type=int, default=128)
    parser.add_argument("--width", type=int, default=64)
    parser.add_argument("--profile-rows", type=int, default=8)
    args = parser.parse_args(argv)
    import keras
    import torch

    if keras.backend.backend() != "torch":
        raise SystemExit("Run with KERAS_BACKEND=torch.")
    if args.mode == "steps":
        print(f"Package steps, PreAct ResNet-18 width {args.width}, batch {args.batch_size}, "
              f"{torch.get_num_threads()} threads, medians of {args.rounds} alternated rounds "
              "(seconds):\n")
        measure_steps(args.methods.split(","), args.rounds, args.batch_size, args.width)
        return 0
    layouts = ("channels_last", "channels_first")
    models = {f: preact_resnet18(f, args.width) for f in layouts}
    inputs = {"channels_last": torch.randn(args.batch_size, 32, 32, 3),
              "channels_first": torch.randn(args.batch_size, 3, 32, 32)}

    def training_pass(layout):
        out = models[layout](inputs[layout], training=True)
        out.square().mean().backward()

    for layout in layouts:
        training_pass(layout)
    times = {f: [] for f in layouts}
    for _ in range(args.rounds):
        for layout in layouts:
            start = time.perf_counter()
            training_pass(layout)
            times[layout].append(time.perf_counter() - start)
    last, first = (statistics.median(times[f]) for f in layouts)
    print(f"PreAct ResNet-18 width {args.width}, batch {args.batch_size}, forward + backward, "
          f"{torch.get_num_threads()} threads, medians of {args.rounds}:")
    print(f"  channels_last {last:.3f} s, channels_first {first:.3f} s, "
          f"last / first {last / first:.2f}x")
    for layout in layouts:
        with torch.profiler.profile() as profile:
            training_pass(layout)
        print(f"\n{layout}:")
        print(profile.key_averages().table(sort_by="self_cpu_time_total",
                                           row_limit=args.profile_rows))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
