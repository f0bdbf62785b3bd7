"""Training methods, one folder each: `<name>/trainers.py` (the algorithm) and
`<name>/__init__.py` (its `MethodSpec`: reference defaults, presets).

This package imports no Keras until a trainer is asked for, so the command
line and the benchmark harness can list and read the methods before the
backend is chosen. A new method is a new folder; nothing else names it.

Example:
>>> from keras_sanm import methods
>>> methods.names()
('cdr', 'ce', 'coteaching', 'dividemix', 'elr_plus', 'ssr')
>>> plain, with_sanm = methods.get("dividemix").trainers()
"""

from __future__ import annotations

import functools
import importlib
import os

from keras_sanm.methods.spec import MethodSpec


@functools.cache
def names() -> tuple[str, ...]:
    """Every method's name (its folder), sorted; the folder is listed once."""
    here = os.path.dirname(__file__)
    return tuple(sorted(
        entry for entry in os.listdir(here)
        if os.path.isfile(os.path.join(here, entry, "__init__.py"))))


def get(name: str) -> MethodSpec:
    """The `MethodSpec` of a method; unknown names raise `ValueError`."""
    if name not in names():
        raise ValueError(f"Unknown method {name!r}; available: {list(names())}.")
    return importlib.import_module(f"keras_sanm.methods.{name}").SPEC


def register_all() -> None:
    """Imports every trainer and the backbones' own layers, which registers them
    with `keras.saving` (imports Keras)."""
    importlib.import_module("keras_sanm.backbones.layers")
    for name in names():
        get(name).trainers()


def __getattr__(attribute):
    if attribute == "METHODS":  # name -> (plain trainer, SANM trainer); imports Keras
        return {name: get(name).trainers() for name in names()}
    raise AttributeError(f"module 'keras_sanm.methods' has no attribute {attribute!r}")
