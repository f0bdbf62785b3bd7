"""A model's random-seed states, saved and loaded with its variables."""

from __future__ import annotations

import keras


def seed_generators(model: keras.Model) -> list:
    """Every `SeedGenerator` of `model` and its layers, in a fixed order.

    Random draws inside a step (SANM's masks, mixing weights, dropout, the
    pretraining views) are training state that Keras does not write by
    itself; with these states a checkpoint resumes the same draws.

    Args:
        model: a built Keras model.

    Returns:
        The generators, each once.
    """
    generators, seen = [], set()
    for layer in model._flatten_layers(include_self=True):
        for generator in layer._seed_generators:
            if id(generator) not in seen:
                seen.add(id(generator))
                generators.append(generator)
    return generators


def save_seed_states(model: keras.Model, store) -> None:
    """Writes every random-seed state of `model` into `store` (`seed_<i>`).

    Called from a model's `save_own_variables`, after its own variables.
    """
    for i, generator in enumerate(seed_generators(model)):
        store[f"seed_{i}"] = generator.state


def split_seed_states(store) -> tuple[dict, dict]:
    """`(variables, seed_states)`: a saved store's own variables and its `seed_<i>` entries."""
    seeds = {key: store[key] for key in store.keys() if str(key).startswith("seed_")}
    return {key: store[key] for key in store.keys() if key not in seeds}, seeds


def load_seed_states(model: keras.Model, seeds: dict) -> None:
    """Restores the states `split_seed_states` found (none: files saved without them).

    Raises:
        ValueError: the file holds another number of states than `model` has.
    """
    generators = seed_generators(model)
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
