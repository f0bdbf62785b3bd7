"""The real-world protocols' backbones: VGG-19 (Animal-10N) and ResNet-50 (Clothing1M)."""

from __future__ import annotations

import keras
from keras import layers

from keras_sanm.backbones.layers import FEATURE_LAYER, batch_norm, conv, torch_default_init

# VGG-19's convolutions per block ("M": 2x2 max-pool), as a multiple of `width`.
_VGG19_PLAN = (1, 1, "M", 2, 2, "M", 4, 4, 4, 4, "M", 8, 8, 8, 8, "M", 8, 8, 8, 8, "M")


def _classifier(x, num_classes: int):
    return layers.Dense(num_classes, kernel_initializer=torch_default_init(), name="logits")(x)


def ResNet50(num_classes: int = 14, input_shape=(224, 224, 3), weights: str | None = None,
             name: str = "resnet50"):
    """ResNet-50 (the Clothing1M backbone) from `keras.applications`, returning logits.

    `keras.applications.ResNet50` without its top, then global average
    pooling and a new dense layer. Its last stage's output (`7x7x2048` at
    224x224) is exposed as the layer `feature_map`.

    Args:
        num_classes: output size (Clothing1M: 14).
        input_shape: `(H, W, C)`; at least 32x32.
        weights: `None` (random) or what `keras.applications.ResNet50` takes
            (`"imagenet"` downloads the ImageNet weights; they were trained
            on Keras' caffe-style inputs, while `wrap` standardises each
            channel, see `wrap(preprocessing=...)`).
        name: model name.

    Returns:
        A Functional `keras.Model`.

    Example:
    >>> model = ResNet50(14, weights="imagenet")   # the Clothing1M protocol's start
    >>> tuple(model.get_layer("feature_map").output.shape)
    (None, 7, 7, 2048)
    """
    base = keras.applications.ResNet50(include_top=False, weights=weights,
                                       input_shape=tuple(input_shape))
    features = layers.Identity(name=FEATURE_LAYER)(base.output)
    pooled = layers.GlobalAveragePooling2D(name="pool")(features)
    return keras.Model(base.input, _classifier(pooled, num_classes), name=name)


def VGG19(num_classes: int = 10, input_shape=(64, 64, 3), batch_norm_layers: bool = True,
          width: int = 64, dense_units: int = 4096, dropout: float = 0.2,
          weights: str | None = None, name: str = "vgg19"):
    """VGG-19 (the Animal-10N backbone), returning logits.

    Sixteen 3x3 convolutions in five blocks (`width` x 1, 2, 4, 8, 8
    filters; 2, 2, 4, 4, 4 per block), each followed by batch
    normalisation and ReLU, a 2x2 max-pool after each block, then the VGG
    classifier: flatten, two dense layers of `dense_units` with ReLU and
    dropout, and the output layer. The last pooled map (`2x2x512` at 64x64)
    is the layer `feature_map`.

    `keras.applications.VGG19` has no batch normalisation, which the
    Animal-10N reference networks (torchvision's `vgg19_bn`) use; so the
    network is built here, and `batch_norm_layers=False` with `width=64`
    is `keras.applications.VGG19`'s layout (the only one with ImageNet
    weights). The reference's adaptive pool to 7x7 before the classifier
    only repeats a 2x2 map's cells, so a dense layer on the flattened map
    computes the same family of functions.

    Args:
        num_classes: output size (Animal-10N: 10).
        input_shape: `(H, W, C)`; at least 64x64 keeps a 2x2 feature map.
        batch_norm_layers: batch normalisation after every convolution.
        width: filters of the first block (64: VGG-19).
        dense_units: units of the two hidden dense layers (4096: VGG-19).
        dropout: dropout after each hidden dense layer (0.2 as the SSR code).
        weights: `None` or `"imagenet"` (only without batch normalisation at
            width 64: `keras.applications.VGG19`'s convolution weights).
        name: model name.

    Returns:
        A Functional `keras.Model`.

    Example:
    >>> model = VGG19(10, (64, 64, 3))
    >>> tuple(model.get_layer("feature_map").output.shape)
    (None, 2, 2, 512)
    """
    if not isinstance(width, int) or width < 1:
        raise ValueError(f"width must be a positive integer; got {width!r}.")
    if weights is not None and (batch_norm_layers or width != 64):
        raise ValueError("Pretrained VGG-19 weights (keras.applications) exist only without "
                         "batch normalisation at width 64: pass batch_norm_layers=False.")
    if weights is not None:
        base = keras.applications.VGG19(include_top=False, weights=weights,
                                        input_shape=tuple(input_shape))
        x = layers.Identity(name=FEATURE_LAYER)(base.output)
        inputs = base.input
    else:
        inputs = keras.Input(input_shape, name="images")
        x, block, index = inputs, 1, 0
        for step, item in enumerate(_VGG19_PLAN):
            if item == "M":
                last = step == len(_VGG19_PLAN) - 1
                x = layers.MaxPooling2D(2, name=FEATURE_LAYER if last else f"block{block}_pool")(x)
                block, index = block + 1, 0
                continue
            index += 1
            prefix = f"block{block}_conv{index}"
            x = conv(item * width, 3, use_bias=not batch_norm_layers, name=prefix)(x)
            if batch_norm_layers:
                x = batch_norm(f"{prefix}_bn")(x)
            x = layers.ReLU(name=f"{prefix}_relu")(x)
    x = layers.Flatten(name="flatten")(x)
    for k in (1, 2):
        x = layers.Dense(dense_units, activation="relu", kernel_initializer=torch_default_init(),
                         name=f"fc{k}")(x)
        x = layers.Dropout(dropout, name=f"fc{k}_dropout")(x)
    return keras.Model(inputs, _classifier(x, num_classes), name=name)
