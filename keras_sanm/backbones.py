"""The paper's CIFAR backbones as Functional models with a `feature_map` layer.

Convolution and dense kernels use PyTorch's default initialisation and batch
normalisation uses PyTorch's momentum (0.1, i.e. Keras `momentum=0.9`) and
epsilon, so training dynamics match the reference code.
"""

from __future__ import annotations

import keras
from keras import layers

from keras_sanm.torch_weights import load_torch_resnet18_weights  # noqa: F401  (public here)

FEATURE_LAYER = "feature_map"


def _torch_default_init():
    # PyTorch's kaiming_uniform_(a=sqrt(5)) == uniform(+-sqrt(1 / fan_in)).
    return keras.initializers.VarianceScaling(1.0 / 3.0, "fan_in", "uniform")


def _bn(name):
    return layers.BatchNormalization(momentum=0.9, epsilon=1e-5, name=name)


def _conv(filters, kernel, strides=1, padding="same", use_bias=False, name=None):
    return layers.Conv2D(
        filters, kernel, strides=strides, padding=padding, use_bias=use_bias,
        kernel_initializer=_torch_default_init(), name=name,
    )


def _preact_block(x, filters, stride, name, output_name=None):
    activated = layers.ReLU(name=f"{name}_relu1")(_bn(f"{name}_bn1")(x))
    if stride != 1 or x.shape[-1] != filters:
        shortcut = _projection(activated, filters, stride, name)
    else:
        # DM-code quirk: the identity shortcut carries the activated input.
        shortcut = activated
    out = _strided_conv3x3(activated, filters, stride, name)
    out = layers.ReLU(name=f"{name}_relu2")(_bn(f"{name}_bn2")(out))
    out = _conv(filters, 3, 1, name=f"{name}_conv2")(out)
    return layers.Add(name=output_name or f"{name}_add")([out, shortcut])


def _strided_conv3x3(x, filters, stride, block):
    """A block's first 3x3 convolution (`{block}_conv1`), padding one pixel on
    every side as PyTorch's `padding=1` (Keras' "same" with stride 2 pads 0
    before and 1 after, shifting this path one pixel against the shortcut)."""
    if stride == 1:
        return _conv(filters, 3, 1, name=f"{block}_conv1")(x)
    padded = layers.ZeroPadding2D(1, name=f"{block}_pad1")(x)
    return _conv(filters, 3, stride, "valid", name=f"{block}_conv1")(padded)


def _projection(x, filters, stride, block):
    """A block's 1x1 stride-`s` shortcut convolution (`{block}_shortcut`),
    written as subsampling every `s`-th pixel (a 1x1 max-pool) and a stride-1
    convolution: the same function and weights, because PyTorch 2.13's CPU
    backward of a strided 1x1 convolution over few channels (4 or 8, from
    64x64 inputs) crashes the process (tests/test_backbones.py)."""
    every = layers.MaxPooling2D(1, stride, name=f"{block}_subsample")(x) if stride != 1 else x
    return _conv(filters, 1, 1, "valid", name=f"{block}_shortcut")(every)


def _basic_block(x, filters, stride, name, output_name=None):
    """The post-activation block of the SANM code's ResNet-18: `relu(F(x) + S(x))`."""
    out = layers.ReLU(name=f"{name}_relu1")(
        _bn(f"{name}_bn1")(_strided_conv3x3(x, filters, stride, name)))
    out = _bn(f"{name}_bn2")(_conv(filters, 3, 1, name=f"{name}_conv2")(out))
    shortcut = x
    if stride != 1 or x.shape[-1] != filters:
        shortcut = _bn(f"{name}_shortcut_bn")(_projection(x, filters, stride, name))
    out = layers.Add(name=f"{name}_add")([out, shortcut])
    return layers.ReLU(name=output_name or f"{name}_relu")(out)


def ResNet18(num_classes: int = 10, input_shape=(32, 32, 3), width: int = 64,
             name="resnet18"):
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

    Returns:
        A Functional `keras.Model`.

    Example:
    >>> model = ResNet18(10)
    >>> tuple(model.get_layer("feature_map").output.shape)
    (None, 4, 4, 512)
    """
    if not isinstance(width, int) or width < 1:
        raise ValueError(f"width must be a positive integer; got {width!r}.")
    inputs = keras.Input(input_shape, name="images")
    x = _conv(width, 3, name="stem_conv")(inputs)
    x = layers.ReLU(name="stem_relu")(_bn("stem_bn")(x))
    stages = ((width, 1), (2 * width, 2), (4 * width, 2), (8 * width, 2))
    for s, (filters, stride) in enumerate(stages):
        for b in range(2):
            last = s == len(stages) - 1 and b == 1
            x = _basic_block(x, filters, stride if b == 0 else 1, f"stage{s + 1}_block{b + 1}",
                             output_name=FEATURE_LAYER if last else None)
    for layer in keras.Model(inputs, x).layers:
        if isinstance(layer, layers.Conv2D):  # kaiming_normal_(mode="fan_out", relu)
            layer.kernel.assign(keras.initializers.VarianceScaling(
                2.0, "fan_out", "untruncated_normal")(layer.kernel.shape))
    x = layers.GlobalAveragePooling2D(name="pool")(x)
    outputs = layers.Dense(
        num_classes, kernel_initializer=_torch_default_init(), name="logits"
    )(x)
    return keras.Model(inputs, outputs, name=name)


def PreActResNet18(num_classes: int = 10, input_shape=(32, 32, 3), width: int = 64,
                   name="preact_resnet18"):
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

    Returns:
        A Functional `keras.Model`.

    Example:
    >>> model = PreActResNet18(10)
    >>> tuple(model.get_layer("feature_map").output.shape)
    (None, 4, 4, 512)
    """
    if not isinstance(width, int) or width < 1:
        raise ValueError(f"width must be a positive integer; got {width!r}.")
    inputs = keras.Input(input_shape, name="images")
    x = _conv(width, 3, name="stem_conv")(inputs)
    x = layers.ReLU(name="stem_relu")(_bn("stem_bn")(x))
    stages = ((width, 1), (2 * width, 2), (4 * width, 2), (8 * width, 2))
    for s, (filters, stride) in enumerate(stages):
        for b in range(2):
            last = s == len(stages) - 1 and b == 1
            x = _preact_block(
                x, filters, stride if b == 0 else 1, f"stage{s + 1}_block{b + 1}",
                output_name=FEATURE_LAYER if last else None,
            )
    x = layers.GlobalAveragePooling2D(name="pool")(x)
    outputs = layers.Dense(
        num_classes, kernel_initializer=_torch_default_init(), name="logits"
    )(x)
    return keras.Model(inputs, outputs, name=name)


def CNN9(num_classes: int = 10, input_shape=(32, 32, 3), dropout: float = 0.25, name="cnn9"):
    """Co-teaching's 9-layer CNN (`CT-code model.py`), returning logits.

    Three 3x3 convs of 128 (same), max-pool, channel dropout; three of 256,
    max-pool, channel dropout; 3x3 valid convs of 512, 256, 128; each conv
    followed by BN and LeakyReLU(0.01); global average pool; dense. The
    dropout is training-only (the reference's stays on at test time, a bug).
    The last activation (`2x2x128` at 32x32) is the layer `feature_map`.

    Args:
        num_classes: output size.
        input_shape: `(H, W, C)`; at least 20x20 for the valid convs.
        dropout: channel dropout rate.
        name: model name.

    Returns:
        A Functional `keras.Model`.

    Example:
    >>> tuple(CNN9(10).get_layer("feature_map").output.shape)
    (None, 2, 2, 128)
    """
    inputs = keras.Input(input_shape, name="images")
    x = inputs
    plan = [(128, "same")] * 3 + ["pool"] + [(256, "same")] * 3 + ["pool"]
    plan += [(512, "valid"), (256, "valid"), (128, "valid")]
    conv_index = 0
    for item in plan:
        if item == "pool":
            x = layers.MaxPooling2D(2, name=f"pool{conv_index}")(x)
            x = layers.SpatialDropout2D(dropout, name=f"dropout{conv_index}")(x)
            continue
        filters, padding = item
        conv_index += 1
        x = _conv(filters, 3, padding=padding, use_bias=True, name=f"conv{conv_index}")(x)
        x = _bn(f"bn{conv_index}")(x)
        act_name = FEATURE_LAYER if conv_index == 9 else f"lrelu{conv_index}"
        x = layers.LeakyReLU(negative_slope=0.01, name=act_name)(x)
    x = layers.GlobalAveragePooling2D(name="gap")(x)
    outputs = layers.Dense(
        num_classes, kernel_initializer=_torch_default_init(), name="logits"
    )(x)
    return keras.Model(inputs, outputs, name=name)


def SmallCNN(num_classes: int = 10, input_shape=(32, 32, 3), name="small_cnn"):
    """A small CNN for quick runs and the demo (not a paper backbone).

    Two conv-BN-ReLU-max-pool blocks (32, 64 filters), a conv-BN-ReLU of 128
    (the layer `feature_map`, 1/4 of the input size), global average pool,
    dense.

    Args:
        num_classes: output size.
        input_shape: `(H, W, C)`, at least 8x8.
        name: model name.

    Returns:
        A Functional `keras.Model`.

    Example:
    >>> tuple(SmallCNN(10, (16, 16, 1)).get_layer("feature_map").output.shape)
    (None, 4, 4, 128)
    """
    inputs = keras.Input(input_shape, name="images")
    x = inputs
    for i, filters in enumerate((32, 64)):
        x = _conv(filters, 3, name=f"conv{i + 1}")(x)
        x = layers.ReLU(name=f"relu{i + 1}")(_bn(f"bn{i + 1}")(x))
        x = layers.MaxPooling2D(name=f"pool{i + 1}")(x)
    x = _conv(128, 3, name="conv3")(x)
    x = layers.ReLU(name=FEATURE_LAYER)(_bn("bn3")(x))
    x = layers.GlobalAveragePooling2D(name="gap")(x)
    outputs = layers.Dense(num_classes, kernel_initializer=_torch_default_init(), name="logits")(x)
    return keras.Model(inputs, outputs, name=name)


BACKBONES = {"preact_resnet18": PreActResNet18, "resnet18": ResNet18, "cnn9": CNN9,
             "small_cnn": SmallCNN}
# Backbones with a `width` argument (base channels).
WIDTH_BACKBONES = ("preact_resnet18", "resnet18")


def get(name: str, num_classes: int, input_shape, width: int | None = None):
    """A backbone by name (`preact_resnet18`, `resnet18`, `cnn9`, `small_cnn`).

    Args:
        name: one of `BACKBONES`.
        num_classes: output size.
        input_shape: `(H, W, C)`.
        width: base channel count (`WIDTH_BACKBONES` only; `None`: the default).

    Returns:
        A Functional `keras.Model` with a `feature_map` layer.
    """
    if name not in BACKBONES:
        raise ValueError(f"Unknown backbone {name!r}; choose from {sorted(BACKBONES)}.")
    options = {}
    if width is not None:
        if name not in WIDTH_BACKBONES:
            raise ValueError(f"width applies to {' and '.join(WIDTH_BACKBONES)} only, "
                             f"not {name!r}.")
        options["width"] = width
    return BACKBONES[name](num_classes=num_classes, input_shape=input_shape, **options)
