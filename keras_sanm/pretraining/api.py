"""`pretrain`: self-supervised training of a base model on its images alone."""

from __future__ import annotations

import keras
import numpy as np

from keras_sanm.data.normalization import strided_sample
from keras_sanm.data.preprocessing import ImagePreprocessing
from keras_sanm.messages import fit_verbosity, inform
from keras_sanm.pretraining.inputs import UnlabeledBatches, pretraining_source
from keras_sanm.pretraining.mark import mark_pretrained
from keras_sanm.pretraining.simclr import SimCLRPretrainer, representation_model

METHODS = ("simclr",)


def _check_count(name: str, value, minimum: int) -> int:
    if isinstance(value, bool) or not isinstance(value, (int, np.integer)) or value < minimum:
        raise ValueError(f"{name} must be an integer >= {minimum}; got {value!r}.")
    return int(value)


def _value_range(sample: np.ndarray):
    """Per-channel `(low, high)` of standardised images, which the views map to `[0, 1]`."""
    channels = strided_sample(sample).reshape(-1, sample.shape[-1]).astype(np.float32)
    return tuple(channels.min(axis=0).tolist()), tuple(channels.max(axis=0).tolist())


def build_pretrainer(base_model: keras.Model, sample: np.ndarray, preprocessing=None,
                     projection_dim: int = 128, temperature: float = 0.5,
                     colour_strength: float = 0.5, seed: int | None = None):
    """A `SimCLRPretrainer` on `base_model`, its input scale decided from `sample` images.

    Returns:
        `(pretrainer, message)`: the model and what was inferred about the
        images' scale (or `None`).
    """
    preprocessing = ImagePreprocessing.create(preprocessing)
    message = preprocessing.decide(sample)
    value_range = _value_range(sample) if preprocessing.pixel_scale is None else None
    model = SimCLRPretrainer(
        representation_model(base_model), preprocessing, value_range,
        projection_dim=projection_dim, temperature=temperature,
        colour_strength=colour_strength, seed=seed, name="simclr_pretrainer")
    return model, message


def pretrain(base_model: keras.Model, images, epochs: int = 100, batch_size: int | None = None,
             method: str = "simclr", *, optimizer=None, temperature: float = 0.5,
             projection_dim: int = 128, colour_strength: float = 0.5, preprocessing=None,
             callbacks=None, verbose="auto", seed: int | None = None) -> keras.callbacks.History:
    """Trains `base_model`'s features on unlabelled images (SimCLR), in place.

    Every image gives two random views drawn on the device (random resized
    crop, flip, colour jitter, greyscale); a projection head on the base
    model's features (the input of its last dense layer) learns, with the
    NT-Xent loss, to tell each view's partner from the other views of the
    batch. Afterwards the head is dropped and `base_model` holds the
    pretrained features (its classifier layer is untouched): wrap it with
    `keras_sanm.wrap` and train on the noisy labels. A two-network method
    wrapped around it starts both networks from these weights
    (`wrap(..., second_network="copy")`, the default for a model this
    function trained; pass it yourself for a base saved and loaded again). Labels, where the input
    has them, are not used.

    Args:
        base_model: a built Functional or Sequential classifier (e.g. a
            `keras_sanm.backbones` model).
        images: what `fit` takes, without labels: a numpy array of uint8,
            `[0, 1]`, `[0, 255]` or standardised floats; a
            `keras_sanm.data.ImageFiles` (or any array-like read on access);
            a folder path (every image file under it, resized to the model's
            input); a `LabeledImages` or `IndexedDataset` (their images); or
            a batched `tf.data.Dataset` / `keras.utils.PyDataset` of images
            or `(images, labels)`.
        epochs: passes over the images.
        batch_size: images per batch for arrays and folders (default 256;
            each batch compares `2 x batch_size` views). A dataset brings its own.
        method: `"simclr"`.
        optimizer: a Keras optimizer (default Adam, learning rate 1e-3,
            weight decay 1e-6).
        temperature: NT-Xent temperature (SimCLR's CIFAR value, 0.5).
        projection_dim: output size of the projection head.
        colour_strength: SimCLR's colour jitter strength (0.5 for CIFAR).
        preprocessing: how images are scaled and standardised, as in
            `keras_sanm.wrap` (default: inferred from the images).
        callbacks: Keras callbacks, e.g. `keras_sanm.TrainingBackup(dir)`
            to checkpoint every epoch and resume when called again, or
            `keras_sanm.pretraining.RepresentationMonitor` to follow the
            kNN accuracy of the features.
        verbose: as in `keras.Model.fit` (0 prints nothing).
        seed: seed of the views and the shuffles.

    Returns:
        The `keras.callbacks.History` of the fit (`loss` per epoch).

    Raises:
        ValueError: before any step, for an unknown method, bad counts, or
            images `fit` would refuse (wrong rank or shape, NaN/Inf).

    Example:
    >>> base = keras_sanm.backbones.PreActResNet18(10, input_shape=(32, 32, 3))
    >>> keras_sanm.pretrain(base, x_train, epochs=100)
    >>> model = keras_sanm.wrap(base, method="dividemix")
    """
    if method not in METHODS:
        raise ValueError(f"Unknown pretraining method {method!r}; choose from {METHODS}.")
    epochs = _check_count("epochs", epochs, 1)
    if batch_size is not None:
        batch_size = _check_count("batch_size", batch_size, 2)
    if not isinstance(base_model, keras.Model) or not getattr(base_model, "inputs", None):
        raise ValueError("pretrain() needs a built Functional or Sequential keras.Model "
                         f"(one with `inputs`); got {type(base_model).__name__}.")
    image_shape = tuple(base_model.inputs[0].shape[1:])
    with fit_verbosity(verbose):
        source, sample = pretraining_source(images, batch_size, image_shape, seed)
        model, message = build_pretrainer(
            base_model, sample, preprocessing, projection_dim, temperature, colour_strength, seed)
        if message:
            inform(message)
        if not isinstance(source, UnlabeledBatches):
            inform("A dataset's own pipeline feeds the pretraining: a resumed run restarts "
                   "it (its order and random state are not checkpointed).")
    model.compile(optimizer=optimizer or keras.optimizers.Adam(1e-3, weight_decay=1e-6))
    model.train_on(source)
    # `wrap` starts a two-network method's second network from these weights too.
    mark_pretrained(base_model)
    # The batches shuffle themselves (a dataset is taken in its own order).
    return model.fit(source, epochs=epochs, callbacks=list(callbacks or []), verbose=verbose,
                     shuffle=False)
