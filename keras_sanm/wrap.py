"""`wrap()`: turns a Keras classifier into a noisy-label training model."""

from __future__ import annotations

import keras

from keras_sanm import methods, protocols
from keras_sanm.backbones.feature_map import build_feature_network, find_feature_layer, layer_output
from keras_sanm.data.preprocessing import ImagePreprocessing
from keras_sanm.presets import preset_config
from keras_sanm.pretraining.mark import was_pretrained


def _outputs_logits(model: keras.Model) -> bool:
    last = model.layers[-1] if getattr(model, "layers", None) else None
    activation = getattr(last, "activation", None)
    if activation is None and isinstance(last, keras.layers.Softmax):
        return False
    return activation is not keras.activations.softmax


SECOND_NETWORKS = ("fresh", "copy")


def _copy_network(model: keras.Model, start: str) -> keras.Model:
    """A second network of the same architecture: freshly initialised, or a
    copy of `model`'s weights (`start="copy"`)."""
    try:
        copy = keras.models.clone_model(model)
    except Exception as error:  # noqa: BLE001 - re-raised with guidance
        raise ValueError(
            "A two-network method builds a second copy of the model with "
            "keras.models.clone_model, which failed; pass a Functional or "
            f"Sequential model. ({error})"
        ) from error
    if start == "copy":
        copy.set_weights(model.get_weights())
    return copy


def _second_network_start(base_model: keras.Model, second_network: str | None) -> str:
    if second_network is None:
        return "copy" if was_pretrained(base_model) else "fresh"
    if second_network not in SECOND_NETWORKS:
        raise ValueError(f"second_network must be one of {SECOND_NETWORKS} or None; "
                         f"got {second_network!r}.")
    return second_network


def _with_softmax(model: keras.Model) -> keras.Model:
    return keras.Model(model.inputs, keras.layers.Softmax()(model.outputs[0]))


def _load_encoder_weights(model: keras.Model, feature_layer, path: str) -> None:
    layer = find_feature_layer(model, feature_layer)
    encoder = keras.Model(model.inputs, layer_output(layer))
    encoder.load_weights(path)


def wrap(
    base_model: keras.Model,
    method: str = "ce",
    sanm: bool = True,
    feature_layer: str | None = None,
    num_classes: int | None = None,
    from_logits: bool | None = None,
    seed: int | None = None,
    preset: str | None = None,
    protocol: str | None = None,
    double_softmax: bool = False,
    encoder_weights: str | None = None,
    preprocessing=None,
    second_network: str | None = None,
    **config,
) -> keras.Model:
    """Wraps a classifier for training on noisy labels.

    Args:
        base_model: a Keras classifier with one `(batch, classes)` output. With
            `sanm=True` it must be Functional or Sequential with a spatial
            feature map (found automatically: the last rank-4 tensor before
            global pooling).
        method: training method: `"ce"` (cross-entropy), `"cdr"`
            (critical-parameter updates), `"ssr"` (neighbour-agreement
            selection, mixup and feature consistency; it reads the feature
            map, so the base model needs one also with `sanm=False`), or a
            two-network method trained on
            the base model and a second network of its architecture (see
            `second_network`): `"coteaching"`, `"dividemix"`, `"elr_plus"`. Options a method
            needs and the user did not give are set at the first `fit` and
            printed: CDR's `noise_rate` and Co-teaching's `forget_rate` are
            estimated from the model's label quality after two epochs,
            ELR+'s `num_samples` is the data size. SANM versions:
            docs/algorithms.md, "SANM with each method".
        sanm: add SANM's noisy masking and reconstruction branch.
        feature_layer: name of the layer whose output SANM masks from.
        num_classes: optional check against the model's output size.
        from_logits: whether the model outputs logits; detected from a final
            softmax when `None`.
        seed: seed of masks, data order, augmentation and GMM initialisation.
        preset: name of a reference setting (`keras_sanm.presets.PRESETS`,
            e.g. `"cifar10-sym-0.5"`): the method's hyper-parameters for that
            dataset and noise; explicit `**config` entries override it.
        protocol: name of a real-world training protocol
            (`keras_sanm.protocols.PROTOCOLS`, e.g. `"animal10n"`): the
            method's own reference settings for that dataset (SSR's
            relabelling threshold, ...); explicit `**config` entries override
            them. Its optimizer comes with `compile(protocol=...)`.
        double_softmax: reproduction switch (docs/algorithms.md, "SANM"): append a
            softmax to the model and treat its probabilities as logits, as
            the SANM CIFAR code does. Off by default.
        encoder_weights: path of a `.weights.h5` file saved from the encoder
            (`keras.Model(base.input, feature_map_layer.output)`), e.g. a
            SimCLR/C2D-style pre-trained encoder, loaded into every network.
            Off by default.
        preprocessing: how raw images become network inputs. `None`
            (default): read at the first `fit` from the training images
            (uint8 or floats in `[0, 255]`: divided by 255; floats in
            `[0, 1]`: as they are; then standardised per channel with the
            training images' mean and std; floats with negative values: taken
            as already standardised). Or a `keras_sanm.ImagePreprocessing`,
            a dataset name for its published constants (`"cifar10"`), or
            `"none"`. The model applies it in `fit`, `evaluate`, `predict`
            and `label_quality`, and refuses images of another scale.
        second_network: how a two-network method's second network starts:
            `"fresh"` (its own random initialisation, as DivideMix and
            Co-teaching from scratch) or `"copy"` (the base model's weights,
            as C2D starts both networks from one self-supervised checkpoint;
            use it for any pretrained base). `None` (default): `"copy"` for
            a base trained by `keras_sanm.pretrain` in this session, else
            `"fresh"`. Single-network methods ignore it.
        **config: method options, e.g. `augment` (training arrays: `"weak"`
            pad-4 crop and flip, or `None`; default the method's reference:
            weak, none for Co-teaching, DivideMix's own views),
            `reconstruction_weight`,
            `clip_negative_targets`, `mask_aspect` (the boxes' shape:
            `"uniform:0.8"` by default, `"fixed:1.0"` for squares; see
            `masking.aspect_range`), `mask_config` (see `NoisyMask`);
            DivideMix: `lambda_u`, `threshold`, `warmup_epochs`, ...;
            Co-teaching: `forget_rate`, `estimate_after`, ...; CDR:
            `noise_rate`, `estimate_after`; ELR+: `num_samples`, `beta`,
            `lambda_elr`, ... (see each trainer).

    Returns:
        A `keras.Model` with `compile()`, `fit()`, `predict()`, `evaluate()`.

    Example:
    >>> model = keras_sanm.wrap(keras_sanm.backbones.PreActResNet18(10))
    >>> model.compile()                       # reference optimizer and schedule
    >>> model.fit(x_train, y_noisy, batch_size=64, epochs=2)
    """
    spec = methods.get(method)  # unknown names raise, listing the methods
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
    second_start = _second_network_start(base_model, second_network)
    if double_softmax:
        base_model, from_logits = _with_softmax(base_model), True
    if preset is not None and protocol is not None:
        raise ValueError("preset (a CIFAR noise cell) and protocol (a real-world dataset) "
                         "are settings for different datasets; give one.")
    if preset is not None:
        config = {**preset_config(preset, method, sanm), **config}
    if protocol is not None:
        config = {**protocols.get(protocol).method_options(method), **config}
    plain, with_sanm = spec.trainers()
    trainer = with_sanm if sanm else plain
    with_features = sanm or spec.needs_features
    if not with_features and feature_layer is not None:
        raise ValueError("feature_layer is only used with sanm=True.")
    if with_features:
        find_feature_layer(base_model, feature_layer)  # clear error before copying
    bases = [base_model]
    for _ in range(getattr(trainer, "network_count", 1) - 1):
        bases.append(_copy_network(base_model, second_start))
    if encoder_weights is not None:
        for model in bases:
            _load_encoder_weights(model, feature_layer, encoder_weights)
    networks = [build_feature_network(b, feature_layer) if with_features else b for b in bases]
    options = dict(from_logits=from_logits, seed=seed,
                   preprocessing=ImagePreprocessing.create(preprocessing), **config)
    if len(networks) == 1:
        return trainer(networks[0], model_classes, **options)
    return trainer(networks, model_classes, **options)
