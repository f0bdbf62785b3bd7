"""`SeedStateSaving`: a model's random-seed states saved with its variables."""

from __future__ import annotations

import keras


class SeedStateSaving:
    """Adds every `SeedGenerator` state of a `keras.Model` to its saved variables.

    Random draws inside a step (SANM's masks, mixing weights, dropout, the
    pretraining views) are training state that Keras does not write by
    itself; with these states a checkpoint resumes the same draws.
    """

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
                f"{len(generators)}. Load it into a model built the same way (a wrapped model: "
                "the same method, SANM setting and backbone)."
            )
        for i, generator in enumerate(generators):
            if f"seed_{i}" in seeds:
                value = keras.ops.convert_to_numpy(seeds[f"seed_{i}"])
                generator.state.assign(value.astype(generator.state.dtype))
