"""Keras on PyTorch: the same PreAct ResNet-18 training pass in channels-last and channels-first.

Keras' default layout is channels-last; PyTorch's convolutions are
channels-first, so every Keras convolution on the torch backend copies its
input and output between layouts. This builds the network (PreAct
ResNet-18 layout, batch-norm, identity and 1x1 shortcuts) in both layouts,
runs forward + backward of a batch alternately, and prints the median time
of each and the top operations of one profiled pass per layout
(`torch.profiler`): `aten::copy_` are the layout copies, and the
`aten::mul`/`sum`/`add_`/`div` rows are Keras' batch normalisation, which
the torch backend builds from element-wise operations.

    KERAS_BACKEND=torch python benchmarks/torch_layout.py --rounds 5 --batch-size 128
"""

from __future__ import annotations

import argparse
import os
import statistics
import time

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


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--batch-size", type=int, default=128)
    parser.add_argument("--width", type=int, default=64)
    parser.add_argument("--profile-rows", type=int, default=8)
    args = parser.parse_args(argv)
    import keras
    import torch

    if keras.backend.backend() != "torch":
        raise SystemExit("Run with KERAS_BACKEND=torch.")
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
