"""`SimCLRPretrainer`: a base model's features trained by contrasting two views of each image.

SimCLR (Chen et al., 2020): every image of a batch gives two random views
(`keras_sanm.pretraining.views`); the base model's features of both pass
through a small projection head, and the NT-Xent loss asks each view to
find its partner among the other `2B - 1` views by cosine similarity. The
projection head is dropped afterwards; the base model keeps the features.
"""

from __future__ import annotations

import keras
import numpy as np
from keras import layers, ops

from keras_sanm.backbones.feature_map import find_feature_layer, layer_output
from keras_sanm.pretraining.views import simclr_view
from keras_sanm.training.seed_state import load_seed_states, save_seed_states, split_seed_states


def nt_xent(projections, temperature: float = 0.5):
    """SimCLR's normalised temperature-scaled cross-entropy of a batch of view pairs.

    Args:
        projections: `(2B, D)`; rows `i` and `i + B` are the two views of image `i`.
        temperature: the softmax temperature of the cosine similarities.

    Returns:
        The mean loss over the `2B` views (a scalar, float32).

    Example:
    >>> nt_xent(keras.ops.ones((8, 4)))   # all views alike: log(7)
    """
    z = ops.cast(projections, "float32")
    z = z / ops.maximum(ops.norm(z, axis=1, keepdims=True), 1e-12)
    count = ops.shape(z)[0]
    half = count // 2
    logits = ops.matmul(z, ops.transpose(z)) / temperature
    position = ops.arange(count)
    logits = ops.where(position[:, None] == position[None, :], -1e9, logits)
    partner = (position + half) % count
    log_probability = ops.log_softmax(logits, axis=1)
    chosen = ops.take_along_axis(log_probability, ops.expand_dims(partner, 1), axis=1)
    return -ops.mean(chosen)


def representation_model(base_model: keras.Model) -> keras.Model:
    """The part of a classifier that gives its features: everything before the last dense layer.

    The input of the model's last layer when that is a dense layer on a
    vector (the classifiers of `keras_sanm.backbones`, `with_classifier`,
    keras-hub's image classifiers); otherwise the global average of its
    last spatial feature map (`keras_sanm.backbones.feature_map.find_feature_layer`).

    Args:
        base_model: a built Functional or Sequential classifier.

    Returns:
        A `keras.Model` sharing `base_model`'s layers, returning `(B, D)` features.

    Example:
    >>> features = representation_model(keras_sanm.backbones.PreActResNet18(10))
    """
    last = base_model.layers[-1]
    if isinstance(last, layers.Dense) and len(last.input.shape) == 2:
        features = last.input
    else:
        feature_map = layer_output(find_feature_layer(base_model))
        features = layers.GlobalAveragePooling2D(name="representation_pool")(feature_map)
    inputs = base_model.inputs[0] if len(base_model.inputs) == 1 else base_model.inputs
    return keras.Model(inputs, features, name=f"{base_model.name}_representation")


class SimCLRPretrainer(keras.Model):
    """Trains a base model's features with SimCLR; the base model's layers train in place.

    `call(images)` draws two views of every image on the device, runs the
    base model's features (`representation_model`) and a projection head
    (dense, batch normalisation, ReLU, dense) on both, and returns the `2B`
    projections; `compute_loss` is NT-Xent on them. The step itself is
    Keras' own `train_step` on each backend (a plain gradient step on one
    loss over all trainable weights is exactly what it does), so mixed
    precision, distribution and callbacks work as in any Keras model.
    `keras_sanm.pretrain` builds, compiles and fits it.

    Args:
        encoder: `representation_model(base_model)`.
        preprocessing: a decided `keras_sanm.ImagePreprocessing` (the scale
            of the images `fit` gets).
        value_range: for standardised images (`pixel_scale=None`), the
            per-channel `(low, high)` the views map to `[0, 1]`; else `None`.
        projection_dim: output size of the projection head.
        temperature: NT-Xent temperature.
        colour_strength: SimCLR's colour jitter strength.
        seed: seed of the view draws.
    """

    def __init__(self, encoder: keras.Model, preprocessing, value_range=None,
                 projection_dim: int = 128, temperature: float = 0.5,
                 colour_strength: float = 0.5, seed: int | None = None, **kwargs):
        super().__init__(**kwargs)
        self.encoder = encoder
        self.preprocessing = preprocessing
        self.value_range = value_range
        self.temperature = float(temperature)
        self.colour_strength = float(colour_strength)
        width = int(encoder.outputs[0].shape[-1])
        self.projection = keras.Sequential([
            layers.Dense(width, use_bias=False),
            layers.BatchNormalization(),
            layers.ReLU(),
            layers.Dense(projection_dim),
        ], name="projection_head")
        self.projection.build((None, width))
        self.seed_generator = keras.random.SeedGenerator(seed)
        # Every variable exists now, so a checkpoint loads before the first step.
        self.built = True

    # ------------------------------------------------------------- scales
    def _to_unit(self, images):
        """Images as given -> `[0, 1]`, where the views work."""
        x = ops.cast(images, "float32")
        scale = self.preprocessing.pixel_scale
        if scale is not None:
            return x / scale
        low, high = (np.asarray(v, np.float32) for v in self.value_range)
        return (x - low) / np.maximum(high - low, 1e-6)

    def _from_unit(self, views):
        """Views in `[0, 1]` -> the network's input (the model's preprocessing)."""
        scale = self.preprocessing.pixel_scale
        if scale is not None:
            return self.preprocessing(views * scale)
        low, high = (np.asarray(v, np.float32) for v in self.value_range)
        return views * (high - low) + low

    def encode(self, images, training: bool = False):
        """The base model's features of images as `fit` takes them (no views)."""
        return self.encoder(self.preprocessing(images), training=training)

    def train_on(self, source) -> None:
        """Names the batches `fit` is given, so that a checkpoint keeps their order."""
        object.__setattr__(self, "_training_source", source)

    def resumable_state(self) -> dict:
        """`{"data": batches}` when the batches have a state (`keras_sanm.TrainingBackup`)."""
        source = getattr(self, "_training_source", None)
        return {"data": source} if hasattr(source, "get_state") else {}

    def save_own_variables(self, store) -> None:
        """The model's own variables, then its view draws' seed states (resumable draws)."""
        super().save_own_variables(store)
        save_seed_states(self, store)

    def load_own_variables(self, store) -> None:
        variables, seeds = split_seed_states(store)
        super().load_own_variables(variables)
        load_seed_states(self, seeds)

    # ------------------------------------------------------------- the step
    def call(self, images, training=False):
        unit = self._to_unit(images)
        views = ops.concatenate([
            simclr_view(unit, self.seed_generator, self.colour_strength),
            simclr_view(unit, self.seed_generator, self.colour_strength)], axis=0)
        features = self.encoder(self._from_unit(views), training=training)
        return self.projection(features, training=training)

    def compute_loss(self, x=None, y=None, y_pred=None, sample_weight=None, training=True):
        loss = nt_xent(y_pred, self.temperature)
        for extra in self.losses:  # the base model's weight regularisers, if any
            loss = loss + ops.cast(extra, "float32")
        return loss

    def compute_output_spec(self, images, training=False):
        return keras.KerasTensor((None, self.projection.layers[-1].units), dtype="float32")
