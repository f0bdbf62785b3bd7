"""Per-epoch curves of a training run: test accuracy, labeled-set size, detection AUC."""

from __future__ import annotations

import csv
import os

import numpy as np

# Panel title -> (y label, [(log column, legend), ...]) in the order drawn.
CURVE_PANELS = {
    "test accuracy": ("accuracy", [("val_accuracy", "test"), ("accuracy", "train")]),
    "labeled-set size": ("samples", [("labeled_1", "labeled set of net 1"),
                                     ("labeled_2", "labeled set of net 2")]),
    "clean fraction": ("fraction", [("clean_fraction", "judged clean")]),
    "detection AUC": ("AUC", [("noise_auc", "wrong-label detection"),
                              ("noise_auc_1", "net 1 split"), ("noise_auc_2", "net 2 split")]),
}


def read_log(path: str) -> dict[str, np.ndarray]:
    """A run's per-epoch log as columns.

    Args:
        path: a `log.csv` written by Keras' `CSVLogger` (`keras-sanm train`
            writes one), or a run folder holding it.

    Returns:
        `{column: float64 array}`; empty cells are NaN.

    Example:
    >>> read_log("runs/cifar10_ce_sanm_sym0.5")["val_accuracy"][-1]
    """
    if os.path.isdir(path):
        path = os.path.join(path, "log.csv")
    if not os.path.exists(path):
        raise FileNotFoundError(f"No training log at {path}.")
    with open(path, newline="") as f:
        rows = list(csv.DictReader(f))
    if not rows:
        raise ValueError(f"{path} holds no epochs yet.")

    def number(text):
        try:
            return float(text)
        except (TypeError, ValueError):
            return float("nan")

    return {key: np.array([number(row.get(key)) for row in rows]) for key in rows[0]}


def curve_panels(history) -> dict[str, dict[str, np.ndarray]]:
    """The panels a log can fill: `{panel: {legend: per-epoch values}}`.

    A column that is absent or NaN in every epoch (e.g. no label-quality
    split, or no true labels for the AUC) is left out; a panel with no
    column left is left out.

    Args:
        history: `{column: per-epoch values}` (`read_log`, or a Keras
            `History.history`).
    """
    panels = {}
    for title, (_, columns) in CURVE_PANELS.items():
        series = {}
        for column, legend in columns:
            values = np.asarray(history.get(column, []), np.float64)
            if values.size and np.isfinite(values).any():
                series[legend] = values
        if series:
            panels[title] = series
    return panels


def plot_training_curves(history):
    """Test accuracy, labeled-set size and wrong-label detection AUC per epoch.

    Args:
        history: a path to `log.csv` or a run folder, a Keras `History`, or
            `{column: per-epoch values}`.

    Returns:
        A `matplotlib.figure.Figure` with one panel per quantity the log
        holds (epochs without a value, e.g. warm-up, are gaps).

    Raises:
        ValueError: the log holds none of the plotted quantities.

    Example:
    >>> keras_sanm.viz.plot_training_curves("runs/my_run").savefig("curves.png")
    """
    from keras_sanm.viz.figures import _figure

    if isinstance(history, (str, os.PathLike)):
        history = read_log(os.fspath(history))
    history = getattr(history, "history", history)
    panels = curve_panels(history)
    if not panels:
        raise ValueError(
            "The log has none of the plotted columns "
            f"({sorted({c for _, cols in CURVE_PANELS.values() for c, _ in cols})}); "
            f"it has {sorted(history)}."
        )
    from matplotlib.ticker import MaxNLocator

    figure, axes = _figure(1, len(panels), cell=3.4, ticks=True)
    for ax, (title, series) in zip(axes[0], panels.items()):
        for legend, values in series.items():
            # Epoch 1 is the first epoch (Keras logs count from 0).
            ax.plot(np.arange(1, len(values) + 1), values,
                    marker="." if len(values) < 30 else None, label=legend)
        ax.xaxis.set_major_locator(MaxNLocator(integer=True))
        ax.set_title(title, fontsize=9)
        ax.set_xlabel("epoch", fontsize=8)
        ax.set_ylabel(CURVE_PANELS[title][0], fontsize=8)
        ax.tick_params(labelsize=7)
        ax.legend(fontsize=7)
        ax.grid(alpha=0.3)
    return figure
