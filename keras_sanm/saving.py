"""Loading saved wrappers: `keras_sanm.load_model`."""

from __future__ import annotations

import os

import keras


def load_model(filepath: str | os.PathLike, custom_objects: dict | None = None, **kwargs):
    """Loads a `.keras` file saved from a wrapped model, on any backend.

    Same as `keras.saving.load_model`, after registering the package's
    trainers and layers (they register when `keras_sanm.methods` is
    imported, which a fresh process may not have done). The loaded model has
    its networks, decoders, per-sample state (e.g. ELR+ targets), random-seed
    states and, when it was compiled, its optimizer state and the
    `compile()` arguments (reference optimizer and schedule included), so
    `fit` continues where the saved model stopped. A file saved on one
    backend loads on the others.

    Args:
        filepath: path of a `.keras` file written by `model.save`.
        custom_objects: classes of the user's own layers in the networks.
        **kwargs: passed to `keras.saving.load_model` (`compile`, `safe_mode`).

    Returns:
        The wrapped model (e.g. a `SANMDivideMixTrainer`).

    Example:
    >>> model.save("dividemix.keras")
    >>> model = keras_sanm.load_model("dividemix.keras")
    """
    from keras_sanm import methods

    methods.register_all()

    if not os.path.exists(filepath):
        raise FileNotFoundError(f"No saved model at {os.fspath(filepath)!r}.")
    return keras.saving.load_model(filepath, custom_objects=custom_objects, **kwargs)
