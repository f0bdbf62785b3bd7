"""Finding a model's spatial feature map and exposing it next to the output."""

from __future__ import annotations

import math

import keras


def _rank4_spatial(tensor) -> bool:
    shape = tuple(tensor.shape)
    return len(shape) == 4 and None not in shape[1:3] and shape[1] * shape[2] > 1


# Tokens before the patch tokens: none, a class token, a class token and 4 registers.
LEADING_TOKENS = (0, 1, 5)


def token_grid(tensor) -> tuple[int, int, int] | None:
    """`(height, width, skipped)` when a `(batch, tokens, channels)` tensor is a
    square grid of patch tokens (a vision transformer's), else `None`.

    The tokens form a grid when their count less the leading tokens of a
    known layout is a square larger than 1: none, a class token (ViT:
    `skipped` = 1), or a class token and 4 registers (DINOv2 with registers:
    5); the first layout that fits is taken.
    """
    shape = tuple(tensor.shape)
    if len(shape) != 3 or shape[1] is None or shape[2] is None:
        return None
    for skipped in LEADING_TOKENS:
        side = math.isqrt(max(shape[1] - skipped, 0))
        if side > 1 and side * side == shape[1] - skipped:
            return side, side, skipped
    return None


def layer_output(layer):
    """The symbolic output of `layer` in the model that calls it.

    For a model nested as a layer (a keras-hub backbone inside its image
    classifier), Keras' `output` is the nested model's own graph output, and
    a model built on it would take the nested model apart into its layers;
    the output of the call in the outer model keeps it one layer, rebuilt by
    its own `from_config` on loading. Keras has no public accessor for that
    call's output, hence the node read here.
    """
    nodes = getattr(layer, "_inbound_nodes", None) if isinstance(layer, keras.Model) else None
    if nodes:
        outputs = nodes[-1].output_tensors
        return outputs[0] if len(outputs) == 1 else outputs
    return layer.output


def _spatial(tensor) -> bool:
    """A feature map SANM can place boxes on: `(B, H, W, C)` or a square token grid."""
    return _rank4_spatial(tensor) or token_grid(tensor) is not None


def _graph_inputs(model: keras.Model):
    if not hasattr(model, "inputs") or not model.inputs:
        raise ValueError(
            "wrap() needs a built Functional or Sequential model (one with "
            "`model.inputs`). Build a Sequential model with `keras.Input(shape)` "
            "as its first layer, or call it once on data. A subclassed model "
            "cannot be inspected: rebuild it with the Functional API."
        )
    return model.inputs[0] if len(model.inputs) == 1 else model.inputs


def find_feature_layer(model: keras.Model, feature_layer: str | None = None):
    """The layer whose output is the spatial feature map used for masking.

    Without `feature_layer`, the last layer (in the model's topological order)
    whose output is a rank-4 tensor with more than one spatial position (the
    last convolutional feature map before global pooling), or a vision
    transformer's patch tokens `(batch, tokens, channels)` on a square grid
    (`token_grid`; `build_feature_network` reshapes them into a map).

    Args:
        model: a built Functional or Sequential Keras model.
        feature_layer: name of the layer to use instead.

    Returns:
        The `keras.layers.Layer`.

    Raises:
        ValueError: unknown layer name, a layer whose output is not a spatial
            feature map, or a model without one.
    """
    _graph_inputs(model)
    if feature_layer is not None:
        names = [layer.name for layer in model.layers]
        if feature_layer not in names:
            raise ValueError(
                f"feature_layer={feature_layer!r} is not a layer of model "
                f"{model.name!r}. Its layers are: {names}."
            )
        layer = model.get_layer(feature_layer)
        if not _spatial(layer_output(layer)):
            raise ValueError(
                f"Layer {feature_layer!r} outputs shape {tuple(layer_output(layer).shape)}; "
                "the feature layer must output (batch, height, width, channels) "
                "with a known spatial size larger than 1x1, or (batch, tokens, "
                "channels) patch tokens of a square grid (a class token first allowed)."
            )
        return layer
    candidates = [
        layer
        for layer in model.layers
        if not isinstance(layer, keras.layers.InputLayer)
        and _spatial(layer_output(layer))
    ]
    if not candidates:
        raise ValueError(
            f"Model {model.name!r} has no spatial feature map (no layer outputs a "
            "(batch, height, width, channels) tensor larger than 1x1), so SANM "
            "cannot place its masks. Use a convolutional model, pass "
            "feature_layer='<name of a conv layer>', or wrap with sanm=False."
        )
    return candidates[-1]


def build_feature_network(model: keras.Model, feature_layer: str | None = None):
    """A Functional model returning `(feature_map, output)` with `model`'s weights.

    Args:
        model: a built Functional or Sequential model.
        feature_layer: optional name of the feature-map layer.

    Returns:
        `keras.Model` sharing all layers with `model`.

    Example:
    >>> base = keras.Sequential([keras.Input((8, 8, 3)),
    ...     keras.layers.Conv2D(4, 3), keras.layers.GlobalAveragePooling2D(),
    ...     keras.layers.Dense(2)])
    >>> net = build_feature_network(base)
    >>> [tuple(t.shape) for t in net.outputs]
    [(None, 6, 6, 4), (None, 2)]
    """
    layer = find_feature_layer(model, feature_layer)
    if len(model.outputs) != 1:
        raise ValueError(
            f"wrap() needs a model with one output (class scores); {model.name!r} "
            f"has {len(model.outputs)}."
        )
    features = layer_output(layer)
    grid = token_grid(features)
    if grid is not None:  # patch tokens -> (batch, height, width, channels)
        height, width, skipped = grid
        features = keras.layers.Reshape((height, width, features.shape[-1]),
                                        name=f"{layer.name}_grid")(features[:, skipped:, :])
    return keras.Model(
        _graph_inputs(model),
        [features, model.outputs[0]],
        name=f"{model.name}_with_features",
    )
