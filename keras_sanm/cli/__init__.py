"""Command line: `keras-sanm train`, `keras-sanm pretrain`, `keras-sanm demo`,
`keras-sanm plot` and `keras-sanm issues` (the research harness is `python -m benchmarks` in the
repository, not part of the installed package).

One module per subcommand (`train.py`, `pretrain.py`, `demo.py`, `plot.py`,
`issues.py`);
`arguments.py` builds the parser. Nothing here imports Keras before the
backend is chosen.
"""

from __future__ import annotations

import json
import os
import sys

from keras_sanm.cli import pretrain as pretrain_cli
from keras_sanm.cli.arguments import (
    ABLATION_PARTS,
    BACKBONE_NAMES,
    BACKENDS,
    DATASET_NAMES,
    METHOD_NAMES,
    build_parser,
)
from keras_sanm.cli.demo import demo_command, demo_verdict
from keras_sanm.cli.issues import issues_command
from keras_sanm.cli.plot import _require_matplotlib, plot_command
from keras_sanm.cli.train import RUN_SETTINGS, train_command

__all__ = ["ABLATION_PARTS", "BACKBONE_NAMES", "DATASET_NAMES", "METHOD_NAMES", "RUN_SETTINGS",
           "build_parser", "demo_verdict", "main"]


def _installed(backend: str) -> bool:
    import importlib.util

    return importlib.util.find_spec(backend) is not None  # the backends' module names


def _configured_backend() -> str:
    """The backend of Keras' `keras.json` (where Keras looks for it), else Keras' default."""
    home = os.environ.get("KERAS_HOME") or os.path.join(os.path.expanduser("~"), ".keras")
    try:
        with open(os.path.join(home, "keras.json")) as f:
            return json.load(f).get("backend", "tensorflow")
    except (OSError, ValueError):
        return "tensorflow"


def _default_backend() -> str | None:
    """The backend to use when `--backend` is not given.

    `KERAS_BACKEND` wins (`None`: nothing to set); then Keras' configured
    backend if it is installed; else the first installed of jax, torch and
    tensorflow, said on stderr. (Keras itself would fail with "No module
    named 'tensorflow'" where only the JAX or PyTorch extra is installed.)
    """
    if os.environ.get("KERAS_BACKEND"):
        return None
    configured = _configured_backend()
    for backend in (configured, "jax", "torch", "tensorflow"):
        if backend in BACKENDS and _installed(backend):
            if backend != configured:
                print(f"Keras backend: {backend} ({configured}, Keras' configured backend, is "
                      "not installed; choose with --backend or KERAS_BACKEND)", file=sys.stderr)
            return backend
    raise SystemExit("No Keras backend is installed: pip install 'keras-sanm[jax]' "
                     "(or [torch] or [tensorflow]).")


def main(argv=None) -> int:
    args = build_parser().parse_args(argv)
    if args.command == "plot":
        _require_matplotlib()
    if args.command == "issues":
        _require_pandas()
    if args.backend:
        if "keras" in sys.modules and os.environ.get("KERAS_BACKEND") != args.backend:
            raise SystemExit("--backend must be chosen before Keras is imported.")
        os.environ["KERAS_BACKEND"] = args.backend
    elif "keras" not in sys.modules:
        backend = _default_backend()
        if backend:
            os.environ["KERAS_BACKEND"] = backend
    commands = {"train": train_command, "pretrain": pretrain_cli.pretrain_command,
                "demo": demo_command, "plot": plot_command, "issues": issues_command}
    if args.command in ("train", "pretrain") and args.verbose == 0:
        # Silent fits; what they decide (preprocessing, estimated rates) is
        # still part of the run's report.
        from keras_sanm.messages import logged_to_stdout

        with logged_to_stdout():
            commands[args.command](args)
    else:
        commands[args.command](args)
    return 0


def _require_pandas() -> None:
    import importlib.util

    if importlib.util.find_spec("pandas") is None:
        raise SystemExit("keras-sanm issues writes a pandas table: pip install "
                         "'keras-sanm[cleanlab]' (or pip install pandas).")


if __name__ == "__main__":
    sys.exit(main())
