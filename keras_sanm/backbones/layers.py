"""Layers shared by the backbones, initialised and normalised as PyTorch does.

Convolution and dense kernels use PyTorch's default initialisation and batch
normalisation uses PyTorch's momentum (0.1, i.e. Keras `momentum=0.9`) and
epsilon, so training dynamics match the reference code.
"""

from __future__ import annotations

import keras
from keras import layers

# The layer whose output is the spatial feature map SANM masks from.
FEATURE_LAYER = "feature_map"


def torch_default_init():
    # PyTorch's kaiming_uniform_(a=sqrt(5)) == uniform(+-sqrt(1 / fan_in)).
    return keras.initializers.VarianceScaling(1.0 / 3.0, "fan_in", "uniform")


def batch_norm(name):
    return layers.BatchNormalization(momentum=0.9, epsilon=1e-5, name=name)


def conv(filters, kernel, strides=1, padding="same", use_bias=False, name=None):
    return layers.Conv2D(
        filters, kernel, strides=strides, padding=padding, use_bias=use_bias,
        kernel_initializer=torch_default_init(), name=name,
    )


def strided_conv3x3(x, filters, stride, block):
    """A block's first 3x3 convolution (`{block}_conv1`), padding one pixel on
    every side as PyTorch's `padding=1` (Keras' "same" with stride 2 pads 0
    before and 1 after, shifting this path one pixel against the shortcut)."""
    if stride == 1:
        return conv(filters, 3, 1, name=f"{block}_conv1")(x)
    padded = layers.ZeroPadding2D(1, name=f"{block}_pad1")(x)
    return conv(filters, 3, stride, "valid", name=f"{block}_conv1")(padded)


def projection(x, filters, stride, block):
    """A block's 1x1 stride-`s` shortcut convolution (`{block}_shortcut`),
    written as subsampling every `s`-th pixel (a 1x1 max-pool) and a stride-1
    convolution: the same function and weights, because PyTorch 2.13's CPU
    backward of a strided 1x1 convolution over few channels (4 or 8, from
    64x64 inputs) crashes the process (tests/test_backbones.py)."""
    every = layers.MaxPooling2D(1, stride, name=f"{block}_subsample")(x) if stride != 1 else x
    return conv(filters, 1, 1, "valid", name=f"{block}_shortcut")(every)


def resnet18_body(input_shape, width: int, block):
    """`(inputs, feature_map)` of a CIFAR ResNet-18: 3x3 stem conv, BN, ReLU, then
    four stages of two `block(x, filters, stride, name, output_name)` calls
    (`width` x 1, 2, 4, 8 filters; strides 1, 2, 2, 2); the last block's
    output is named `feature_map`."""
    if not isinstance(width, int) or width < 1:
        raise ValueError(f"width must be a positive integer; got {width!r}.")
    inputs = keras.Input(input_shape, name="images")
    x = conv(width, 3, name="stem_conv")(inputs)
    x = layers.ReLU(name="stem_relu")(batch_norm("stem_bn")(x))
    stages = ((width, 1), (2 * width, 2), (4 * width, 2), (8 * width, 2))
    for s, (filters, stride) in enumerate(stages):
        for b in range(2):
            last = s == len(stages) - 1 and b == 1
            x = block(x, filters, stride if b == 0 else 1, f"stage{s + 1}_block{b + 1}",
                      output_name=FEATURE_LAYER if last else None)
    return inputs, x
