"""`plot_run`: the figures of a `keras-sanm train` run folder, written as PNG."""

from __future__ import annotations

import json
import os

import numpy as np

from keras_sanm import methods
from keras_sanm.viz.curves import plot_training_curves, read_log

FIGURE_NAMES = ("curves", "activation_maps", "reconstructions")


def _summary(run_dir: str) -> dict:
    path = os.path.join(run_dir, "summary.json")
    if not os.path.exists(path):
        raise FileNotFoundError(
            f"{run_dir} has no summary.json: the run has not finished (its log.csv "
            "alone gives the curves)."
        )
    with open(path) as f:
        return json.load(f)


def run_label(summary: dict) -> str:
    """`SANM(DivideMix)`-style name of a run's method."""
    name = str(summary.get("method"))
    method = methods.get(name).label if name in methods.names() else name
    return f"SANM({method})" if summary.get("sanm") else method


def _load_model(run_dir: str):
    from keras_sanm.saving import load_model

    path = os.path.join(run_dir, "model.keras")
    if not os.path.exists(path):
        raise FileNotFoundError(f"{run_dir} has no model.keras (written when a run ends).")
    return load_model(path)


def run_training_data(summary: dict, run_dir: str, data_dir: str | None = None) -> dict:
    """A finished run's training images and the labels it was given.

    Reloads the run's training subset (`dataset`, `train_size`, `seed` of
    `summary.json`) and its noisy labels (the noise file beside the log, or
    the dataset's own noisy labels). Nothing is downloaded.

    Returns:
        `{"images"` (raw, as the run's model takes them), `"given"`, `"true"`
        (`None` where unknown: real label noise), `"class_names"`, `"mean"`,
        `"std"}`.
    """
    from keras_sanm import datasets
    from keras_sanm.data import load_noise_file, noise_file_name

    data = datasets.load(summary["dataset"], data_dir, summary.get("train_size"),
                         summary.get("test_size"), seed=summary.get("seed", 0), download=False)
    if data.noisy_train is not None:
        noisy = data.noisy_train
    else:
        mode, rate = summary["noise"].split(":")
        path = os.path.join(run_dir, noise_file_name(data.name, float(rate), mode))
        if not os.path.exists(path):
            raise FileNotFoundError(f"The run's noise file {path} is missing.")
        noisy = load_noise_file(path, len(data.y_train), data.num_classes)
    return {"images": data.x_train, "given": np.asarray(noisy), "true": data.y_train,
            "class_names": getattr(data, "class_names", None), "mean": data.mean,
            "std": data.std}


def run_samples(summary: dict, run_dir: str, data_dir: str | None, per_group: int,
                seed: int = 0) -> dict:
    """Training samples of a run with a correct and with a wrong label.

    Draws `per_group` samples of each kind from `run_training_data`.

    Returns:
        `{"images"` (raw, as the run's model takes them), `"given"`, `"true"`, `"clean"` (bool),
        `"mean"`, `"std"}`: correctly labelled samples first.
    """
    if summary.get("noise") == "real" and summary.get("actual_noise_rate") is None:
        raise ValueError(f"{summary['dataset']} has real label noise: which training labels "
                         "are wrong is unknown, so samples cannot be drawn by it.")
    data = run_training_data(summary, run_dir, data_dir)
    noisy, true = data["given"], data["true"]
    rng = np.random.default_rng(seed)
    clean = np.flatnonzero(noisy == true)
    wrong = np.flatnonzero(noisy != true)
    picked = [rng.choice(group, min(per_group, len(group)), replace=False)
              for group in (clean, wrong) if len(group)]
    index = np.concatenate(picked)
    return {
        "images": data["images"][index],
        "given": noisy[index], "true": true[index],
        "clean": noisy[index] == true[index], "mean": data["mean"], "std": data["std"],
    }


def plot_run(run_dir: str, output_dir: str | None = None, data_dir: str | None = None,
             compare: str | None = None, samples: int = 4, seed: int = 0) -> dict:
    """Writes a run's figures as PNG: curves, activation maps, reconstructions.

    * `curves.png`: test accuracy, labeled-set size and detection AUC per
      epoch, from `log.csv` (works while the run is still going).
    * `activation_maps.png`: `samples` training images with a correct and
      `samples` with a wrong label, the activation map of the run's model
      (and of `compare`'s) with the peak and valley boxes; the boxes are
      drawn at label quality 1 for correct and 0 for wrong labels, the two
      ends of SANM's box sizes.
    * `reconstructions.png`: the same images masked and reconstructed by
      the decoder (SANM runs only).

    Args:
        run_dir: a `keras-sanm train` output folder.
        output_dir: where to write (default `<run_dir>/figures`).
        data_dir: the dataset folder the run was trained from (default: the
            one in `summary.json`).
        compare: another run folder on the same data, drawn beside this one
            (e.g. CE next to SANM(CE)).
        samples: samples per group (correct / wrong label).
        seed: seed of the sample choice and box draws.

    Returns:
        `{"written": [paths], "skipped": {figure: reason}}`.

    Example:
    >>> keras_sanm.viz.plot_run("runs/cifar10_ce_sanm_sym0.5")
    """
    from keras_sanm.viz.figures import plot_activation_maps, plot_reconstructions

    output_dir = output_dir or os.path.join(run_dir, "figures")
    os.makedirs(output_dir, exist_ok=True)
    written, skipped = [], {}

    def save(figure, name):
        path = os.path.join(output_dir, f"{name}.png")
        figure.savefig(path, dpi=110)
        written.append(path)

    save(plot_training_curves(read_log(run_dir)), "curves")
    try:
        summary = _summary(run_dir)
        models = {run_label(summary): _load_model(run_dir)}
        if compare is not None:
            other = _summary(compare)
            for key in ("dataset", "train_size", "seed", "noise"):
                if other.get(key) != summary.get(key):
                    raise ValueError(
                        f"--compare {compare} was trained on other data ({key}: "
                        f"{other.get(key)!r} vs {summary.get(key)!r})."
                    )
            label = run_label(other)
            models[label if label not in models else f"{label} ({os.path.basename(compare)})"] = (
                _load_model(compare))
        picked = run_samples(summary, run_dir, data_dir or summary.get("data_dir"), samples, seed)
    except (FileNotFoundError, ValueError) as error:
        for name in FIGURE_NAMES[1:]:
            skipped[name] = str(error)
        return {"written": written, "skipped": skipped}
    for model in models.values():
        model.preprocessing.adopt_legacy_constants(picked["mean"], picked["std"])
    quality = picked["clean"].astype(np.float32)
    save(plot_activation_maps(models, picked["images"], picked["given"], picked["true"],
                              quality, seed=seed),
         "activation_maps")
    model = next(iter(models.values()))
    if getattr(model, "noisy_mask", None) is None:
        skipped["reconstructions"] = "the run was trained without SANM, so it has no decoder"
    else:
        save(plot_reconstructions(model, picked["images"], quality, seed=seed),
             "reconstructions")
    return {"written": written, "skipped": skipped}
