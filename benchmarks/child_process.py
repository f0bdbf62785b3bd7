"""One measurement per Keras backend, each in its own process (Keras fixes the backend per process).

A benchmark script calls itself with `--child ...` under `KERAS_BACKEND=<backend>`;
the child prints its result as one `RESULT <json>` line (`print_result`) and
the parent reads it back (`child_result`).
"""

from __future__ import annotations

import json
import os
import subprocess
import sys


def print_result(result: dict) -> None:
    """The child's side: its result on a line of its own (after any progress output)."""
    print("\nRESULT " + json.dumps(result), flush=True)


def child_result(script: str, backend: str, args: list[str]) -> dict:
    """Runs `script --child ARGS` under `KERAS_BACKEND=backend`; returns its result.

    Raises `SystemExit` with the end of the child's error output if it fails.
    """
    proc = subprocess.run([sys.executable, os.path.abspath(script), "--child", *args],
                          env=dict(os.environ, KERAS_BACKEND=backend),
                          capture_output=True, text=True)
    lines = [line for line in proc.stdout.splitlines() if line.startswith("RESULT ")]
    if proc.returncode or not lines:
        raise SystemExit(f"{os.path.basename(script)} on {backend} failed:\n"
                         f"{proc.stderr[-4000:]}")
    return json.loads(lines[-1][len("RESULT "):])
