"""The SANM code's CIFAR ResNet-18 (post-activation basic blocks)."""

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


def _basic_block(x, filters, stride, name, output_name=None, data_format="channels_last"):
    """The post-activation block of the SANM code's ResNet-18: `relu(F(x) + S(x))`."""
    out = layers.ReLU(name=f"{name}_relu1")(batch_norm(f"{name}_bn1", data_format)(
        strided_conv3x3(x, filters, stride, name, data_format)))
    out = batch_norm(f"{name}_bn2", data_format)(
        conv(filters, 3, 1, name=f"{name}_conv2", data_format=data_format)(out))
    shortcut = x
    if stride != 1 or channels(x, data_format) != filters:
        shortcut = batch_norm(f"{name}_shortcut_bn", data_format)(
            projection(x, filters, stride, name, data_format))
    out = layers.Add(name=f"{name}_add")([out, shortcut])
    return layers.ReLU(name=output_name or f"{name}_relu")(out)


def ResNet18(num_classes: int = 10, input_shape=(32, 32, 3), width: int = 64,
             name="resnet18", data_format: str | None = None):
    """The SANM code's CIFAR ResNet-18 (post-activation), returning logits.

    The network the official SANM(DivideMix) code trains on CIFAR, starting
    from a self-supervised checkpoint (`load_torch_resnet18_weights` reads
    such a PyTorch state dict): 3x3 conv `width` (stride 1, no max-pool) ->
    BN -> ReLU -> 4 stages of 2 basic blocks (`width` x 1, 2, 4, 8 filters,
    strides 1, 2, 2, 2; each `relu(bn(conv(relu(bn(conv(x))))) + shortcut)`,
    the shortcut a 1x1 conv and BN where the shape changes) -> global average
    pool -> dense. The last block's output, after its ReLU (`4x4x512` at
    32x32 and width 64), is the layer `feature_map`. Convolutions start as
    the reference initialises them (normal, fan-out, ReLU gain).

    Args:
        num_classes: output size.
        input_shape: `(H, W, C)`.
        width: filters of the stem and the first stage (64: the reference).
        name: model name.
        data_format: layout between the input and the feature map, as in
            `PreActResNet18` (`None`: channels-first on torch).

    Returns:
        A Functional `keras.Model`.

    Example:
    >>> model = ResNet18(10)
    >>> tuple(model.get_layer("feature_map").output.shape)
    (None, 4, 4, 512)
    """
    inputs, x = resnet18_body(input_shape, width, _basic_block, data_format)
    for layer in keras.Model(inputs, x).layers:
        if isinstance(layer, layers.Conv2D):  # kaiming_normal_(mode="fan_out", relu)
            layer.kernel.assign(keras.initializers.VarianceScaling(
                2.0, "fan_out", "untruncated_normal")(layer.kernel.shape))
    x = layers.GlobalAveragePooling2D(name="pool")(x)
    outputs = layers.Dense(
        num_classes, kernel_initializer=torch_default_init(), name="logits"
    )(x)
    return keras.Model(inputs, outputs, name=name)
