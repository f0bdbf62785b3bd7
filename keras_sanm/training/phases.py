"""`Phase`: what one training step trains, passed to the step explicitly."""

from __future__ import annotations

from typing import NamedTuple


class Phase(NamedTuple):
    """The kind of step and the network it trains.

    A method's step functions (`compute_train_loss`, `step_variables`,
    `transform_gradients`, `after_step`) receive the phase as an argument;
    the backend compiles one step function per phase
    (`keras_sanm.backend.compile_phase_step`), so a compiled step never
    reads the phase from the model. Methods with one network train every
    step in `TRAIN`; DivideMix has `("warmup", k)` and `("train", k)`
    phases for its networks `k = 0, 1`.

    Args:
        kind: the kind of step (`"train"`, `"warmup"`).
        network: the index of the network the step trains.

    Example:
    >>> Phase("warmup", 1)
    Phase(kind='warmup', network=1)
    """

    kind: str = "train"
    network: int = 0


TRAIN = Phase("train", 0)
