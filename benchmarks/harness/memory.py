"""Peak resident memory of this process around a piece of work (Linux `/proc`)."""

from __future__ import annotations

import os

_STATUS = "/proc/self/status"
_CLEAR_REFS = "/proc/self/clear_refs"


def _status_kib(field: str) -> int | None:
    try:
        with open(_STATUS) as f:
            for line in f:
                if line.startswith(field + ":"):
                    return int(line.split()[1])
    except OSError:
        return None
    return None


class PeakMemory:
    """Resets the resident-set high-water mark on entry; reads it on exit.

    Host memory only (on a GPU, device memory is not counted). Where `/proc`
    cannot be read or reset (not Linux), `peak_mib` and `extra_mib` are `None`.

    Attributes:
        peak_mib: the highest resident set size (MiB) inside the block.
        extra_mib: `peak_mib` minus the resident set size at entry: the
            memory the work itself needed on top of what was already held.

    Example:
    >>> with PeakMemory() as memory:
    ...     step()
    >>> memory.peak_mib, memory.extra_mib
    """

    def __init__(self):
        self.peak_mib = None
        self.extra_mib = None
        self._start = None

    def __enter__(self) -> PeakMemory:
        try:
            with open(_CLEAR_REFS, "w") as f:
                f.write("5")  # 5: reset the peak RSS to the current RSS
            self._start = _status_kib("VmRSS")
        except OSError:
            self._start = None
        return self

    def __exit__(self, *exc) -> None:
        peak = _status_kib("VmHWM") if self._start is not None else None
        if peak is not None:
            self.peak_mib = peak / 1024
            self.extra_mib = max(peak - self._start, 0) / 1024


def available() -> bool:
    """Whether peak memory can be measured here."""
    return os.path.exists(_CLEAR_REFS) and _status_kib("VmHWM") is not None
