"""`keras-sanm plot`: a finished run's figures as PNG files."""

from __future__ import annotations

import os


def plot_command(args) -> dict:
    from keras_sanm.viz import plot_run

    if not os.path.isdir(args.run_dir):
        raise SystemExit(f"{args.run_dir} is not a folder.")
    try:
        result = plot_run(args.run_dir, args.output, args.data_dir, args.compare,
                          args.samples, args.seed)
    except (FileNotFoundError, ValueError) as error:
        raise SystemExit(str(error)) from None
    for path in result["written"]:
        print(f"wrote {path}")
    for name, reason in result["skipped"].items():
        print(f"skipped {name}: {reason}")
    return result


def _require_matplotlib() -> None:
    import importlib.util

    if importlib.util.find_spec("matplotlib") is None:
        raise SystemExit("keras-sanm plot draws with matplotlib: pip install 'keras-sanm[viz]' "
                         "(or pip install matplotlib).")
