"""A classification head on a feature extractor (e.g. a keras-hub backbone)."""

from __future__ import annotations

import keras
from keras import layers

from keras_sanm.backbones.feature_map import token_grid


def with_classifier(backbone: keras.Model, num_classes: int, name: str | None = None,
                    ) -> keras.Model:
    """A Functional classifier: `backbone`, global average pooling, a dense layer.

    For a backbone that outputs a feature map (a keras-hub `ResNetBackbone`,
    `EfficientNetBackbone`, a `keras.applications` model without its top)
    or patch tokens (`ViTBackbone`, `DINOV2Backbone`), so that `wrap` can
    train it: the pooling averages the map's positions or all tokens, and
    the dense layer returns logits. SANM masks from the backbone's output
    (tokens reshaped into their grid). keras-hub's own image classifiers
    (`keras_hub.models.ResNetImageClassifier`, ...) need no head: wrap them
    as they are.

    Args:
        backbone: a Functional model with one `(batch, height, width,
            channels)` or `(batch, tokens, channels)` output.
        num_classes: output size.
        name: model name (default: the backbone's with `_classifier`).

    Returns:
        A Functional `keras.Model` returning `(batch, num_classes)` logits.

    Example:
    >>> backbone = keras_hub.models.Backbone.from_preset("dinov2_small")
    >>> model = keras_sanm.wrap(keras_sanm.backbones.with_classifier(backbone, 10))
    """
    if len(getattr(backbone, "outputs", None) or ()) != 1 or len(backbone.inputs) != 1:
        raise ValueError("with_classifier needs a built model with one input and one output.")
    # The backbone stays one layer: a model that saves its inner layers from its
    # own arguments (keras-hub's) is then rebuilt by its own `from_config`.
    inputs = keras.Input(tuple(backbone.inputs[0].shape[1:]))
    output = backbone(inputs)
    rank = len(output.shape)
    if rank == 4:
        pooled = layers.GlobalAveragePooling2D(name="pool")(output)
    elif rank == 3 and token_grid(output) is not None:
        pooled = layers.GlobalAveragePooling1D(name="pool")(output)
    else:
        raise ValueError(f"The backbone outputs shape {tuple(output.shape)}: expected a "
                         "feature map (batch, height, width, channels) or patch tokens "
                         "(batch, tokens, channels) on a square grid.")
    logits = layers.Dense(num_classes, name="logits")(pooled)
    return keras.Model(inputs, logits, name=name or f"{backbone.name}_classifier")
