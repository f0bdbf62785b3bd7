"""Co-teaching's 9-layer CNN and a small CNN for quick runs and tests."""

from __future__ import annotations

import keras
from keras import layers

from keras_sanm.backbones.layers import FEATURE_LAYER, batch_norm, conv, torch_default_init


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
        x = conv(filters, 3, padding=padding, use_bias=True, name=f"conv{conv_index}")(x)
        x = batch_norm(f"bn{conv_index}")(x)
        act_name = FEATURE_LAYER if conv_index == 9 else f"lrelu{conv_index}"
        x = layers.LeakyReLU(negative_slope=0.01, name=act_name)(x)
    x = layers.GlobalAveragePooling2D(name="gap")(x)
    outputs = layers.Dense(
        num_classes, kernel_initializer=torch_default_init(), name="logits"
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
        x = conv(filters, 3, name=f"conv{i + 1}")(x)
        x = layers.ReLU(name=f"relu{i + 1}")(batch_norm(f"bn{i + 1}")(x))
        x = layers.MaxPooling2D(name=f"pool{i + 1}")(x)
    x = conv(128, 3, name="conv3")(x)
    x = layers.ReLU(name=FEATURE_LAYER)(batch_norm("bn3")(x))
    x = layers.GlobalAveragePooling2D(name="gap")(x)
    outputs = layers.Dense(num_classes, kernel_initializer=torch_default_init(), name="logits")(x)
    return keras.Model(inputs, outputs, name=name)
