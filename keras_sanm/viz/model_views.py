"""What the figures show, computed from a model: activation maps, boxes, reconstructions.

Nothing here draws; `keras_sanm.viz.figures` turns these arrays into figures,
so the numbers in a figure are exactly the model's outputs.
"""

from __future__ import annotations

import dataclasses

import keras
import numpy as np

from keras_sanm.backbones.feature_map import build_feature_network
from keras_sanm.data.validation import check_images
from keras_sanm.sanm import masking


@dataclasses.dataclass
class MaskView:
    """SANM's view of a batch through one network.

    Attributes:
        activation_map: `(N, H, W)` float32 in `[0, 1]`, the quantised
            activation map (`masking.activation_map`) divided by 255.
        peak_box, valley_box: `(N, 4)` int32 `top, left, height, width`.
        peak_images, valley_images: `(N, H, W, C)` the masked copies, in the
            model's input space.
        predictions: `(N,)` the network's predicted classes.
    """

    activation_map: np.ndarray
    peak_box: np.ndarray
    valley_box: np.ndarray
    peak_images: np.ndarray
    valley_images: np.ndarray
    predictions: np.ndarray


def _networks(model) -> list:
    return list(getattr(model, "networks", None) or [getattr(model, "network", model)])


def feature_network(model, network_index: int = 0) -> keras.Model:
    """A model returning `(feature_map, scores)` for a wrapped or a plain Keras model.

    Args:
        model: a model from `keras_sanm.wrap` (with or without SANM) or a
            Functional/Sequential classifier with a spatial feature map.
        network_index: which network of a two-network method (0 = the
            first, the one the paper's figures use).

    Returns:
        A `keras.Model` sharing the network's weights.

    Example:
    >>> features, scores = feature_network(model)(images)
    """
    networks = _networks(model)
    if not 0 <= network_index < len(networks):
        raise ValueError(
            f"network_index={network_index} but the model has {len(networks)} network(s)."
        )
    network = networks[network_index]
    if getattr(model, "returns_features", False):
        return network
    return build_feature_network(network)


def _mask_layer(model, seed: int):
    """A fresh `NoisyMask` with the model's mask settings (so the model's random state is untouched)."""
    from keras_sanm.sanm.noisy_mask import NoisyMask

    own = getattr(model, "noisy_mask", None)
    config = {} if own is None else dict(own.get_config())
    for key in ("name", "trainable", "dtype", "seed"):
        config.pop(key, None)
    return NoisyMask(**config, seed=seed)


def _checked(model, images) -> np.ndarray:
    """Raw images in the model's input space: a wrapped model's preprocessing
    applied (after checking the pixel scale); a plain classifier's as given."""
    shape = getattr(model, "image_shape", None)
    if shape is None and getattr(model, "inputs", None):
        shape = tuple(model.inputs[0].shape[1:])
    images = check_images(images, shape)
    preprocessing = getattr(model, "preprocessing", None)
    if preprocessing is None:
        return images.astype(np.float32)
    model.input_pipeline.check_input_images(images)  # (a model not yet trained fixes it from them)
    return preprocessing.apply_numpy(images)


def display_constants(model, mean=None, std=None):
    """`(mean, std)` to show a model's input-space images in colour: the given
    ones, else the wrapped model's standardisation (`None`s if it has none)."""
    preprocessing = getattr(model, "preprocessing", None)
    if mean is None and std is None and preprocessing is not None and isinstance(
            preprocessing.mean, tuple):
        return preprocessing.mean, preprocessing.std
    return mean, std


def _quality(quality, count: int) -> np.ndarray:
    if quality is None:
        return np.ones(count, np.float32)
    quality = np.broadcast_to(np.asarray(quality, np.float32), (count,))
    if np.any(~np.isfinite(quality)) or np.any((quality < 0) | (quality > 1)):
        raise ValueError("quality must hold label qualities in [0, 1].")
    return quality


def mask_view(model, images, quality=None, network_index: int = 0, seed: int = 0) -> MaskView:
    """Activation maps, peak/valley boxes and masked copies of `images`.

    The boxes are placed exactly as in training (`NoisyMask` with the model's
    settings, or the defaults for a model wrapped without SANM); their size
    grows as `quality` falls.

    Args:
        model: a wrapped model or a plain classifier (see `feature_network`).
        images: `(N, H, W, C)` raw images as passed to `fit` (a wrapped
            model preprocesses them; a plain classifier takes them as given).
        quality: `(N,)` or scalar label quality in `[0, 1]` (default 1).
        network_index: which network of a two-network method.
        seed: seed of the box draws (ratio, aspect, fill).

    Returns:
        A `MaskView`.

    Example:
    >>> view = mask_view(model, x_train[:8], quality=0.0)
    >>> view.activation_map.shape      # (8, 32, 32)
    """
    images = _checked(model, images)
    features, scores = feature_network(model, network_index)(images, training=False)
    height, width = images.shape[1:3]
    amap = masking.activation_map(features, (height, width))
    masked = _mask_layer(model, seed)(images, features, _quality(quality, len(images)))
    numpy = keras.ops.convert_to_numpy
    return MaskView(
        activation_map=(numpy(amap) / 255.0).astype(np.float32),
        peak_box=numpy(masked["peak_box"]).astype(np.int32),
        valley_box=numpy(masked["valley_box"]).astype(np.int32),
        peak_images=numpy(masked["peak_images"]).astype(np.float32),
        valley_images=numpy(masked["valley_images"]).astype(np.float32),
        predictions=np.argmax(numpy(scores), axis=-1),
    )


def decoder_of(model, network_index: int = 0):
    """The reconstruction decoder of a SANM model's network `network_index`.

    Raises:
        ValueError: the model has no decoder (wrapped with `sanm=False`).
    """
    decoders = list(getattr(model, "decoders", None) or [])
    if decoders:
        return decoders[network_index]
    decoder = getattr(model, "decoder", None)
    if decoder is None:
        raise ValueError(
            f"{type(model).__name__} has no reconstruction decoder: only models wrapped "
            "with sanm=True reconstruct images."
        )
    return decoder


@dataclasses.dataclass
class ReconstructionView:
    """Masked copies of a batch and the decoder's reconstructions of them.

    Attributes:
        images: `(N, H, W, C)` the originals, in the model's input space.
        peak_images, valley_images: `(N, H, W, C)` the masked copies.
        peak_reconstructions, valley_reconstructions: `(N, H, W, C)` the
            decoder's outputs for each copy (all in the model's input space).
        peak_error, valley_error: `(N,)` mean squared error to the original.
    """

    images: np.ndarray
    peak_images: np.ndarray
    valley_images: np.ndarray
    peak_reconstructions: np.ndarray
    valley_reconstructions: np.ndarray
    peak_error: np.ndarray
    valley_error: np.ndarray


def reconstruction_view(model, images, quality=None, network_index: int = 0,
                        seed: int = 0) -> ReconstructionView:
    """What SANM's decoder makes of the masked copies of `images`.

    Args:
        model: a model wrapped with `sanm=True`.
        images: `(N, H, W, C)` raw images as passed to `fit`.
        quality: label quality setting the box size (default 1).
        network_index: which network (and decoder) of a two-network method.
        seed: seed of the box draws.

    Returns:
        A `ReconstructionView`.

    Example:
    >>> view = reconstruction_view(model, x_test[:4])
    >>> view.peak_reconstructions.shape   # (4, 32, 32, 3)
    """
    decoder = decoder_of(model, network_index)
    view = mask_view(model, images, quality, network_index, seed)
    images = _checked(model, images)
    network = feature_network(model, network_index)
    outputs = []
    for masked in (view.peak_images, view.valley_images):
        features, _ = network(masked, training=False)
        outputs.append(keras.ops.convert_to_numpy(decoder(features)).astype(np.float32))

    def error(reconstruction):
        return np.mean((reconstruction - images) ** 2, axis=(1, 2, 3))

    return ReconstructionView(
        images=images,
        peak_images=view.peak_images,
        valley_images=view.valley_images,
        peak_reconstructions=outputs[0],
        valley_reconstructions=outputs[1],
        peak_error=error(outputs[0]),
        valley_error=error(outputs[1]),
    )


def displayable(images, mean=None, std=None) -> np.ndarray:
    """Images in `[0, 1]` for display: un-normalised with `mean`/`std`, else min-max per image.

    Args:
        images: `(N, H, W, C)` normalised images (or uint8).
        mean, std: the per-channel normalisation constants used, if known.

    Returns:
        `(N, H, W, C)` float32 in `[0, 1]` (one channel is kept as is).
    """
    images = np.asarray(images, np.float32)
    if mean is not None and std is not None:
        images = images * np.asarray(std, np.float32) + np.asarray(mean, np.float32)
        return np.clip(images, 0.0, 1.0)
    if images.max(initial=0.0) > 1.0 and images.min(initial=0.0) >= 0.0:
        return np.clip(images / 255.0, 0.0, 1.0)
    if images.min(initial=0.0) >= 0.0:  # already in [0, 1]
        return images
    low = images.min(axis=(1, 2, 3), keepdims=True)
    high = images.max(axis=(1, 2, 3), keepdims=True)
    return (images - low) / np.maximum(high - low, 1e-12)
