"""PreAct ResNet-18 as in DivideMix's reference code."""

from __future__ import annotations

import keras
from keras import layers

from keras_sanm.backbones.layers import (
    batch_norm,
    channels,
    conv,
    projection,
    resnet18_body,
    strided_conv3x3,
    torch_default_init,
)


def _preact_block(x, filters, stride, name, output_name=None, data_format="channels_last"):
    activated = layers.ReLU(name=f"{name}_relu1")(batch_norm(f"{name}_bn1", data_format)(x))
    if stride != 1 or channels(x, data_format) != filters:
        shortcut = projection(activated, filters, stride, name, data_format)
    else:
        # DM-code quirk: the identity shortcut carries the activated input.
        shortcut = activated
    out = strided_conv3x3(activated, filters, stride, name, data_format)
    out = layers.ReLU(name=f"{name}_relu2")(batch_norm(f"{name}_bn2", data_format)(out))
    out = conv(filters, 3, 1, name=f"{name}_conv2", data_format=data_format)(out)
    return layers.Add(name=output_name or f"{name}_add")([out, shortcut])


def PreActResNet18(num_classes: int = 10, input_shape=(32, 32, 3), width: int = 64,
                   name="preact_resnet18", data_format: str | None = None):
    """PreAct ResNet-18 as in DivideMix's reference code, returning logits.

    3x3 conv `width` -> BN -> ReLU -> 4 stages of 2 pre-activation blocks
    (`width` x 1, 2, 4, 8 filters, strides 1, 2, 2, 2) -> global average pool
    -> dense. Every 3x3 convolution pads one pixel on each side, as PyTorch's
    `padding=1`. The last block's output (`4x4x512` at 32x32 and width 64)
    is the layer `feature_map`.

    Args:
        num_classes: output size.
        input_shape: `(H, W, C)`.
        width: filters of the stem and the first stage (64 is the paper's
            network, about 11 M parameters; 16 or 32 make CPU runs
            affordable, with about 1/16 or 1/4 of the parameters and work).
        name: model name.
        data_format: layout between the input and the feature map (both
            stay channels-last, and the weights are the same either way);
            `None`: the faster one on this backend (channels-first on torch,
            channels-last elsewhere; docs/benchmarks.md).

    Returns:
        A Functional `keras.Model`.

    Example:
    >>> model = PreActResNet18(10)
    >>> tuple(model.get_layer("feature_map").output.shape)
    (None, 4, 4, 512)
    """
    inputs, x = resnet18_body(input_shape, width, _preact_block, data_format)
    x = layers.GlobalAveragePooling2D(name="pool")(x)
    outputs = layers.Dense(
        num_classes, kernel_initializer=torch_default_init(), name="logits"
    )(x)
    return keras.Model(inputs, outputs, name=name)
