"""`TrainerSaving`: how a training wrapper is saved, loaded and recompiled."""

from __future__ import annotations

import keras

from keras_sanm.training.seed_state import SeedStateSaving


class TrainerSaving(SeedStateSaving):
    """The saving part of `NoisyLabelTrainer`: the constructor config, the
    random-seed states saved with the variables (`SeedStateSaving`), and the
    compile arguments.

    `keras.Model.save` and `keras.saving.load_model` call these; a method
    class adds its own options to `get_config`.
    """

    def get_config(self) -> dict:
        """The constructor arguments, with the network(s) serialized (for `model.save`).

        Subclasses add their own options; `SANMBranch` adds SANM's.
        """
        config = {
            "name": self.name,
            "trainable": self.trainable,
            "num_classes": self.num_classes,
            "from_logits": self.from_logits,
            "seed": self.seed,
            "preprocessing": self.preprocessing.get_config(),
            "augment": self.augment,
            **self.network_config(),
        }
        return config

    def network_config(self) -> dict:
        """The serialized network(s), under the constructor's argument name."""
        return {"network": keras.saving.serialize_keras_object(self.network)}

    @staticmethod
    def deserialize_networks(config: dict, custom_objects=None) -> dict:
        """`config` with its `network` / `networks` entries rebuilt as models."""
        config = dict(config)

        def load(item):
            return keras.saving.deserialize_keras_object(item, custom_objects=custom_objects)

        if "network" in config:
            config["network"] = load(config["network"])
        if "networks" in config:
            config["networks"] = [load(item) for item in config["networks"]]
        return config

    @classmethod
    def from_config(cls, config, custom_objects=None):
        config = dict(config)
        # Models saved before they owned their preprocessing took network
        # inputs as they were given.
        config.setdefault("preprocessing", "none")
        return cls(**cls.deserialize_networks(config, custom_objects))

    def get_compile_config(self) -> dict | None:
        """The arguments of the last `compile()` (`None` before it).

        `optimizer=None` (the method's reference optimizer and schedule) is
        kept as `None`, so a loaded model trains on with the same schedule.
        """
        return None if self._compile_arguments is None else dict(self._compile_arguments)

    def compile_from_config(self, config) -> None:
        """Compiles a loaded model as it was compiled when saved, optimizer state built."""
        config = dict(config)
        if config.get("optimizer") is not None:
            config["optimizer"] = keras.saving.deserialize_keras_object(config["optimizer"])
        self.compile(**config)
        if not self.optimizer.built:
            self.optimizer.build(self.trainable_variables)
