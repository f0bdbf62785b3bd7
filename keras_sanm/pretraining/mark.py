"""The mark `keras_sanm.pretrain` leaves on the model it trained.

`keras_sanm.wrap` reads it to start a two-network method's second network
from the pretrained weights instead of a fresh initialisation. The mark is an
attribute of the Python object: a model saved and loaded again has lost it
(pass `wrap(..., second_network="copy")` then).
"""

from __future__ import annotations

_MARK = "_keras_sanm_pretrained"


def mark_pretrained(model) -> None:
    """Records on `model` that `keras_sanm.pretrain` trained its weights."""
    setattr(model, _MARK, True)


def was_pretrained(model) -> bool:
    """Whether `keras_sanm.pretrain` trained `model` in this session."""
    return bool(getattr(model, _MARK, False))
