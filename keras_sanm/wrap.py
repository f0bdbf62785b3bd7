"""`wrap()`: turns a Keras classifier into a noisy-label training model."""

from __future__ import annotations

import keras

from keras_sanm.feature_map import build_feature_network
from keras_sanm.methods import METHODS


def _outputs_logits(model: keras.Model) -> bool:
    last = model.layers[-1] if getattr(model, "layers", None) else None
    activation = getattr(last, "activation", None)
    if activation is None and isinstance(last, keras.layers.Softmax):
        return False
    return activation is not keras.activations.softmax


def wrap(
    base_model: keras.Model,
    method: str = "ce",
    sanm: bool = True,
    feature_layer: str | None = None,
    num_classes: int | None = None,
    from_logits: bool | None = None,
    seed: int | None = None,
    **config,
) -> keras.Model:
    """Wraps a classifier for training on noisy labels.

    Args:
        base_model: a Keras classifier with one `(batch, classes)` output. With
            `sanm=True` it must be Functional or Sequential with a spatial
            feature map (found automatically: the last rank-4 tensor before
            global pooling).
        method: training method; `"ce"` (cross-entropy).
        sanm: add SANM's noisy masking and reconstruction branch.
        feature_layer: name of the layer whose output SANM masks from.
        num_classes: optional check against the model's output size.
        from_logits: whether the model outputs logits; detected from a final
            softmax when `None`.
        seed: seed of masks, data order, augmentation and GMM initialisation.
        **config: method options, e.g. `reconstruction_weight`,
            `clip_negative_targets`, `mask_config` (see `NoisyMask`).

    Returns:
        A `keras.Model` with `compile()`, `fit()`, `predict()`, `evaluate()`.

    Example:
    >>> model = keras_sanm.wrap(keras_sanm.backbones.PreActResNet18(10))
    >>> model.compile()                       # reference optimizer and schedule
    >>> model.fit(x_train, y_noisy, batch_size=64, epochs=2)
    """
    if method not in METHODS:
        raise ValueError(f"Unknown method {method!r}; available: {sorted(METHODS)}.")
    if not isinstance(base_model, keras.Model):
        raise ValueError(f"base_model must be a keras.Model; got {type(base_model).__name__}.")
    try:
        output_shape = tuple(base_model.outputs[0].shape)
    except (AttributeError, TypeError, IndexError):
        output_shape = None
    if output_shape is not None and len(output_shape) != 2:
        raise ValueError(
            f"base_model must output class scores of shape (batch, classes); "
            f"its output has shape {output_shape}."
        )
    model_classes = output_shape[-1] if output_shape else num_classes
    if model_classes is None:
        raise ValueError(
            "Cannot read the number of classes from this model; pass num_classes."
        )
    if model_classes < 2:
        raise ValueError(f"The model outputs {model_classes} class; need at least 2.")
    if num_classes is not None and num_classes != model_classes:
        raise ValueError(
            f"num_classes={num_classes} disagrees with the model's output size "
            f"{model_classes}."
        )
    if from_logits is None:
        from_logits = _outputs_logits(base_model)
    plain, with_sanm = METHODS[method]
    if sanm:
        network = build_feature_network(base_model, feature_layer)
        return with_sanm(
            network, model_classes, from_logits=from_logits, seed=seed, **config
        )
    if feature_layer is not None:
        raise ValueError("feature_layer is only used with sanm=True.")
    return plain(base_model, model_classes, from_logits=from_logits, seed=seed, **config)
