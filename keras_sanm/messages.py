"""What the package tells the user during `fit`, under the fit's `verbose`.

Choices the package makes for the user (the input preprocessing read from
the first images, an estimated noise rate, a dataset's on-disk copy) are
information: logged at INFO on the `"keras_sanm"` logger and also printed
while the current `fit` is verbose, like Keras' own progress output;
`fit(..., verbose=0)` prints nothing. Something that probably makes the
result worse is a `UserWarning` through `warnings`, which Python's filters
control, as Keras does.

Example:
>>> with fit_verbosity(0):
...     inform("Input preprocessing: ...")   # logged only
"""

from __future__ import annotations

import contextlib
import contextvars
import functools
import inspect
import logging
import sys

LOGGER = logging.getLogger("keras_sanm")

# The verbosity of the `fit` in progress; 1 outside any `fit`.
_VERBOSITY: contextvars.ContextVar = contextvars.ContextVar("keras_sanm_verbosity", default=1)


@contextlib.contextmanager
def fit_verbosity(verbose):
    """Sets the verbosity of `inform` for the block (a `fit`'s `verbose` argument).

    Args:
        verbose: `0` (silent), `1`, `2` or `"auto"` (printing).
    """
    token = _VERBOSITY.set(verbose)
    try:
        yield
    finally:
        _VERBOSITY.reset(token)


def is_verbose() -> bool:
    """Whether the `fit` in progress (if any) prints."""
    return _VERBOSITY.get() != 0


def inform(message: str) -> None:
    """Logs `message` at INFO and prints it unless the current `fit` has `verbose=0`.

    Args:
        message: one piece of information for the user.
    """
    LOGGER.info(message)
    if is_verbose():
        print(message, flush=True)


def reports_under_fit_verbosity(fit):
    """Decorates `fit` (or `evaluate`, `predict`) so that `inform` follows its `verbose`.

    Args:
        fit: a method taking `verbose` (by keyword or in `**kwargs`; Keras'
            default `"auto"` when not given). A model used before any `fit`
            decides its preprocessing in `evaluate` or `predict`.

    Returns:
        The method, run under `fit_verbosity(verbose)`.
    """
    signature = inspect.signature(fit)

    @functools.wraps(fit)
    def wrapped(*args, **kwargs):
        bound = signature.bind(*args, **kwargs)
        verbose = bound.arguments.get("verbose", kwargs.get("verbose", "auto"))
        with fit_verbosity(verbose):
            return fit(*args, **kwargs)

    return wrapped


@contextlib.contextmanager
def logged_to_stdout():
    """Prints what the package logs at INFO for the block, whatever the fits' verbosity.

    For programs that report every decision in their own output (the command
    line's `train --verbose 0`, whose log is the run's record); a fit that
    prints (`verbose` other than 0) then prints each message twice, so use it
    with silent fits.
    """
    handler = logging.StreamHandler(sys.stdout)
    handler.setFormatter(logging.Formatter("%(message)s"))
    level = LOGGER.level
    LOGGER.addHandler(handler)
    LOGGER.setLevel(logging.INFO)
    try:
        yield
    finally:
        LOGGER.removeHandler(handler)
        LOGGER.setLevel(level)
