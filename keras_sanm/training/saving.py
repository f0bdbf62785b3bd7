"""How a training wrapper is saved, loaded and recompiled.

`keras.Model.save` and `keras.saving.load_model` call the model's
`get_config`, `from_config`, `get_compile_config`, `compile_from_config`,
`save_own_variables` and `load_own_variables`; `NoisyLabelTrainer` defines
each once, as a call to these functions (and `seed_state`'s).
"""

from __future__ import annotations

import keras


def base_config(model) -> dict:
    """The constructor arguments every training wrapper has, networks serialized.

    Args:
        model: a `NoisyLabelTrainer`; its `network_config()` names the
            network argument(s) (`network`, or `networks` for two).

    Returns:
        A dict of plain values; method classes add their own options.
    """
    return {
        "name": model.name,
        "trainable": model.trainable,
        "num_classes": model.num_classes,
        "from_logits": model.from_logits,
        "seed": model.seed,
        "preprocessing": model.preprocessing.get_config(),
        "augment": model.augment,
        **model.network_config(),
    }


def constructor_arguments(config: dict, custom_objects=None) -> dict:
    """A saved config as constructor arguments: its `network` / `networks` rebuilt as models.

    Models saved before they owned their preprocessing took network inputs
    as they were given (`preprocessing="none"`).
    """
    config = dict(config)
    config.setdefault("preprocessing", "none")

    def load(item):
        return keras.saving.deserialize_keras_object(item, custom_objects=custom_objects)

    if "network" in config:
        config["network"] = load(config["network"])
    if "networks" in config:
        config["networks"] = [load(item) for item in config["networks"]]
    return config


def compile_like_saved(model, config: dict) -> None:
    """Compiles a loaded model as it was compiled when saved, its optimizer state built.

    Args:
        model: the loaded training wrapper.
        config: what its `get_compile_config()` returned when it was saved
            (`optimizer=None` stands for the method's reference optimizer).
    """
    config = dict(config)
    if config.get("optimizer") is not None:
        config["optimizer"] = keras.saving.deserialize_keras_object(config["optimizer"])
    model.compile(**config)
    if not model.optimizer.built:
        model.optimizer.build(model.trainable_variables)
