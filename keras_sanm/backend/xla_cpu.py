"""XLA's CPU convolutions on JAX: XLA's own kernels instead of its YNNPACK library calls.

jaxlib 0.10 sends every convolution on a CPU to YNNPACK
(`--xla_cpu_experimental_ynn_fusion_type` includes `individual_convolution`
by default). On a 2-core AVX-512 CPU those ran the training passes of
PreAct ResNet-18's 3x3 convolutions at 52-204 GFLOP/s; XLA's own kernels
ran them at 148-269 GFLOP/s, and a SANM(DivideMix) step went from 73 s
to 29 s (`benchmarks/conv_rate.py`, docs/benchmarks.md). The other
YNNPACK fusions (element-wise, reductions, dots) stay: turning all of them
off made batch normalisation 5x slower.

`XLA_FLAGS` is read once, when JAX starts its CPU client, so this takes
effect when `keras_sanm` is imported before the first JAX computation.
It is left alone when

* `XLA_FLAGS` already sets `xla_cpu_experimental_ynn_fusion_type` (the
  user's choice),
* `KERAS_SANM_XLA_CPU_DEFAULTS=0` (opting out), or
* jaxlib is not a version this was measured on (an XLA flag it does not
  know stops the process, so none is guessed).
"""

from __future__ import annotations

import os
import warnings

FLAG = "--xla_cpu_experimental_ynn_fusion_type=-individual_convolution"
# jaxlib versions whose XLA knows FLAG and was measured with it.
MEASURED_JAXLIB = ((0, 10),)
OPT_OUT = "KERAS_SANM_XLA_CPU_DEFAULTS"


def _version(text: str) -> tuple[int, int]:
    major, minor = (text.split(".") + ["0"])[:2]
    return int(major), int("".join(c for c in minor if c.isdigit()) or 0)


def cpu_convolution_flags(xla_flags: str, jaxlib_version: str, opt_out: str | None) -> str | None:
    """The `XLA_FLAGS` to set, or `None` to leave them as they are.

    Args:
        xla_flags: the current `XLA_FLAGS` ("" when unset).
        jaxlib_version: `jaxlib.__version__`.
        opt_out: the value of `KERAS_SANM_XLA_CPU_DEFAULTS` (`None` when unset).

    Returns:
        `xla_flags` with `FLAG` appended, or `None`.
    """
    if opt_out is not None and opt_out.strip().lower() in ("0", "false", "no", "off"):
        return None
    if "xla_cpu_experimental_ynn_fusion_type" in xla_flags:
        return None
    if _version(jaxlib_version) not in MEASURED_JAXLIB:
        return None
    return f"{xla_flags} {FLAG}".strip()


def apply_cpu_convolution_default() -> bool:
    """Appends `FLAG` to `XLA_FLAGS` where `cpu_convolution_flags` says so.

    Returns:
        Whether `XLA_FLAGS` was changed.
    """
    import jaxlib

    flags = cpu_convolution_flags(os.environ.get("XLA_FLAGS", ""), jaxlib.__version__,
                                  os.environ.get(OPT_OUT))
    if flags is None:
        return False
    if _client_started():
        import jax

        if jax.default_backend() != "cpu":
            return False  # (the flag concerns CPU steps only)
        warnings.warn(
            "JAX had already run a computation when keras_sanm was imported, so its CPU "
            "convolutions keep YNNPACK (slower here). Import keras_sanm first, or set "
            f"XLA_FLAGS='{FLAG}' before starting Python.", stacklevel=3)
        return False
    os.environ["XLA_FLAGS"] = flags
    return True


def _client_started() -> bool:
    # Private to JAX: read only to warn; when it moves, the flag is set anyway
    # (harmless when the client has started: it is then simply not read).
    try:
        from jax._src import xla_bridge

        return bool(xla_bridge._backends)
    except (ImportError, AttributeError):  # pragma: no cover - other JAX versions
        return False
