"""`TrainerSaving`: how a training wrapper is saved, loaded and recompiled."""

from __future__ import annotations

import keras


class TrainerSaving:
    """The saving part of `NoisyLabelTrainer`: the constructor config, the
    random-seed states saved with the variables, and the compile arguments.

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

    def seed_generators(self) -> list:
        """Every `SeedGenerator` of the model and its layers, in a fixed order.

        Their states (masks, mixing weights, dropout) are training state that
        Keras does not write by itself; `save_own_variables` adds them.
        """
        generators, seen = [], set()
        for layer in self._flatten_layers(include_self=True):
            for generator in layer._seed_generators:
                if id(generator) not in seen:
                    seen.add(id(generator))
                    generators.append(generator)
        return generators

    def save_own_variables(self, store) -> None:
        """The model's own variables, then every random-seed state (`seed_<i>`)."""
        super().save_own_variables(store)
        for i, generator in enumerate(self.seed_generators()):
            store[f"seed_{i}"] = generator.state

    def load_own_variables(self, store) -> None:
        """Inverse of `save_own_variables`; files without seed states load the variables only."""
        seeds = {key: store[key] for key in store.keys() if str(key).startswith("seed_")}
        super().load_own_variables({key: store[key] for key in store.keys() if key not in seeds})
        generators = self.seed_generators()
        if seeds and len(seeds) != len(generators):
            raise ValueError(
                f"The saved model has {len(seeds)} random-seed states; this one has "
                f"{len(generators)}. Load it into a model wrapped with the same method, "
                "SANM setting and backbone."
            )
        for i, generator in enumerate(generators):
            if f"seed_{i}" in seeds:
                value = keras.ops.convert_to_numpy(seeds[f"seed_{i}"])
                generator.state.assign(value.astype(generator.state.dtype))

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
