"""Old import paths of public names, kept for one release after the layout by concern.

`keras_sanm/masking.py` and its siblings are one-line modules that call
`moved_module`: importing the old path warns (a `FutureWarning`, shown by
default) and gives the new module itself, so every name, class and
registered Keras object is the same object under both paths.
"""

from __future__ import annotations

import importlib
import sys
import warnings
from types import ModuleType

# Old public module path -> its new home.
MOVED_MODULES = {
    "keras_sanm.masking": "keras_sanm.sanm.masking",
    "keras_sanm.noisy_mask": "keras_sanm.sanm.noisy_mask",
    "keras_sanm.decoder": "keras_sanm.sanm.decoder",
    "keras_sanm.callbacks": "keras_sanm.training.callbacks",
    "keras_sanm.training_backup": "keras_sanm.training.backup",
    "keras_sanm.preprocessing": "keras_sanm.data.preprocessing",
}


def warn_moved(old: str, stacklevel: int = 3) -> None:
    new = MOVED_MODULES[old]
    warnings.warn(f"{old} moved to {new}; the old path will be removed in the next release.",
                  FutureWarning, stacklevel=stacklevel)


def moved_module(old: str) -> ModuleType:
    """Warns that `old` moved, and makes the import of `old` give the new module."""
    warn_moved(old, stacklevel=4)  # the importing line (importlib's frames are skipped)
    module = importlib.import_module(MOVED_MODULES[old])
    sys.modules[old] = module
    return module
