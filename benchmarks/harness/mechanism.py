"""What SANM(CE)'s masked copies do to samples with wrong labels.

SANM(CE) trains on `[x; m+; m-]`: each image, its copy with the most
activated box masked, and its copy with the least activated box masked, with
targets `[e_y; e~_y; e~_y]` (the given label softened by the mask ratio `s`).
Whether that protects a wrong label `y` or pulls harder towards it depends
on how different the copies are from `x` and how much of the gradient they
carry. For a finished `keras-sanm train` run (CE or SANM(CE)), this measures
on its training set, separately for samples whose given label is correct and
wrong:

* `quality`: the label quality `w` the masking uses (GMM clean posterior of
  the eval-pass loss), and the mask it sets: `mask_area` (fraction of the
  image covered by the box) and `target_on_label` (target mass left on the
  given label, `1 - s`);
* `loss_clean`, `loss_peak`, `loss_valley`: cross-entropy against the given
  label of `x`, `m+` and `m-`, and `same_prediction`, the share of `m+`
  predicted as `x` is;
* the gradient of SANM's classification loss `(L_x + 2 L_m) / 3` split into
  its clean part `L_x` and its masked part `L_m` (both copies, modulated
  targets): `cosine` between the two gradients, `masked_share`, the part of
  the total gradient (projected on it) that the masked copies carry.

A CE run has no mask of its own; it is measured with the package's default
`NoisyMask`, i.e. what SANM's copies would be for that network. Forward
passes use inference mode (moving batch-norm statistics), so the groups do
not leak into each other's statistics.

    python -m benchmarks mechanism results/grid/ce_sym0.5_s0 results/grid/ce_sanm_sym0.5_s0
"""

from __future__ import annotations

import argparse
import json
import os
import sys

import numpy as np


def load_run(run_dir: str):
    """`(model, raw_images, noisy_labels, true_labels, summary)` of a finished run."""
    model, data, noisy, summary = load_finished_run(run_dir)
    return model, data.x_train, noisy, np.asarray(data.y_train), summary


def load_finished_run(run_dir: str):
    """`(model, dataset, noisy_labels, summary)` of a finished `keras-sanm train` run.

    The dataset is the run's own subsets (from its `summary.json`), the noisy
    labels are read from the run's noise file.
    """
    import keras_sanm
    from keras_sanm.data import noise_file_name, noisy_labels_from_file

    with open(os.path.join(run_dir, "summary.json")) as f:
        summary = json.load(f)
    data = keras_sanm.datasets.load(summary["dataset"], summary["data_dir"],
                                    summary["train_size"], summary["test_size"],
                                    seed=summary["seed"])
    mode, rate = summary["noise"].split(":")
    noise_path = os.path.join(run_dir, noise_file_name(data.name, float(rate), mode))
    if not os.path.exists(noise_path):
        raise SystemExit(f"{run_dir} has no noise file {os.path.basename(noise_path)}.")
    noisy, _ = noisy_labels_from_file(noise_path, data.y_train, data.num_classes)
    model = keras_sanm.load_model(os.path.join(run_dir, "model.keras"))
    model.preprocessing.adopt_legacy_constants(data.mean, data.std)
    return model, data, np.asarray(noisy), summary


def _noisy_mask(model, seed: int):
    from keras_sanm.sanm.noisy_mask import NoisyMask

    return getattr(model, "noisy_mask", None) or NoisyMask(seed=seed)


def _flat(grads) -> np.ndarray:
    import keras

    return np.concatenate([np.ravel(keras.ops.convert_to_numpy(g)) for g in grads])


def feature_network(model):
    """The wrapped network as a `(feature_map, scores)` model (a CE model has none of its own)."""
    from keras_sanm.backbones.feature_map import build_feature_network

    return model.network if model.returns_features else build_feature_network(model.network)


def group_measures(model, mask, images, labels, quality, batch_size: int = 64) -> dict:
    """The measures of one group of samples (see the module docstring).

    Args:
        model: a wrapped model (`network`, `num_classes`, `from_logits`).
        mask: the `NoisyMask` that makes the copies.
        images: `(N, H, W, C)` images of the group in the model's input
            space (`model.preprocessing` applied).
        labels: `(N,)` their given labels.
        quality: `(N,)` their label quality `w`.
        batch_size: samples per forward pass.

    Returns:
        A dict of floats.
    """
    from keras import ops

    from keras_sanm import backend
    from keras_sanm.sanm.masking import modulate_labels
    from keras_sanm.training import losses

    network = feature_network(model)
    variables = network.trainable_variables

    def features_and_scores(batch):
        features, scores = network(batch, training=False)
        return features, scores
    sums: dict[str, float] = {}
    clean_grad = masked_grad = 0.0
    for start in range(0, len(images), batch_size):
        x = ops.convert_to_tensor(images[start:start + batch_size])
        y = labels[start:start + batch_size]
        w = ops.convert_to_tensor(quality[start:start + batch_size].astype("float32"))
        targets = ops.one_hot(ops.convert_to_tensor(y.astype("int32")), model.num_classes)
        with backend.no_gradient():  # only the two losses below are differentiated
            features, scores = features_and_scores(x)
            masked = mask(x, features, w)
            _, peak_scores = features_and_scores(masked["peak_images"])
            _, valley_scores = features_and_scores(masked["valley_images"])
        peak_targets = modulate_labels(targets, masked["peak_ratio"])
        valley_targets = modulate_labels(targets, masked["valley_ratio"])

        def clean_loss():
            return ops.mean(losses.soft_cross_entropy(
                features_and_scores(x)[1], targets, model.from_logits))

        def masked_loss():
            copies = ops.concatenate([masked["peak_images"], masked["valley_images"]], axis=0)
            copy_targets = ops.concatenate([peak_targets, valley_targets], axis=0)
            return ops.mean(losses.soft_cross_entropy(
                features_and_scores(copies)[1], copy_targets,
                model.from_logits))

        count = len(y)
        clean_grad = clean_grad + count * _flat(backend.gradients(clean_loss, variables))
        masked_grad = masked_grad + count * _flat(backend.gradients(masked_loss, variables))
        one_hot = ops.cast(targets, "float32")
        batch = {
            "quality": w,
            "mask_area": mask.area_factor * masked["peak_ratio"],
            "target_on_label": ops.sum(peak_targets * one_hot, axis=-1),
            "loss_clean": losses.soft_cross_entropy(scores, targets, model.from_logits),
            "loss_peak": losses.soft_cross_entropy(peak_scores, targets, model.from_logits),
            "loss_valley": losses.soft_cross_entropy(valley_scores, targets, model.from_logits),
            "same_prediction": ops.cast(
                ops.argmax(peak_scores, axis=-1) == ops.argmax(scores, axis=-1), "float32"),
        }
        for name, values in batch.items():
            sums[name] = sums.get(name, 0.0) + float(ops.sum(values))
    measures = {name: total / len(images) for name, total in sums.items()}
    clean_grad, masked_grad = clean_grad / len(images), masked_grad / len(images)
    total = clean_grad / 3 + 2 * masked_grad / 3  # SANM's classification loss
    measures["cosine"] = float(clean_grad @ masked_grad / (
        np.linalg.norm(clean_grad) * np.linalg.norm(masked_grad) + 1e-30))
    measures["masked_share"] = float((2 * masked_grad / 3) @ total / (total @ total + 1e-30))
    measures["gradient_norm"] = float(np.linalg.norm(total))
    return measures


def measure_run(run_dir: str, samples: int = 256, seed: int = 0) -> dict:
    """`{"correct": measures, "wrong": measures, "summary": ...}` of one run.

    Args:
        run_dir: a finished `keras-sanm train` folder (with `model.keras`).
        samples: samples drawn per group (at most the group's size).
        seed: draw of the samples and of the mask.
    """
    import keras

    model, images, noisy, true, summary = load_run(run_dir)
    quality = np.asarray(model.label_quality(images, noisy))
    images = model.preprocessing.apply_numpy(images)
    keras.utils.set_random_seed(seed)
    mask = _noisy_mask(model, seed)
    rng = np.random.default_rng(seed)
    out = {"summary": summary}
    for name, members in (("correct", noisy == true), ("wrong", noisy != true)):
        index = np.flatnonzero(members)
        index = rng.choice(index, size=min(samples, len(index)), replace=False)
        out[name] = group_measures(model, mask, images[index], noisy[index], quality[index])
        out[name]["samples"] = len(index)
    return out


COLUMNS = (("quality", "label quality w", "{:.3f}"),
           ("mask_area", "box area % of image", "{:.1%}"),
           ("target_on_label", "target on given label", "{:.3f}"),
           ("loss_clean", "CE(x)", "{:.3f}"),
           ("loss_peak", "CE(m+)", "{:.3f}"),
           ("loss_valley", "CE(m-)", "{:.3f}"),
           ("same_prediction", "m+ predicted as x", "{:.1%}"),
           ("cosine", "cos(grad clean, grad masked)", "{:.3f}"),
           ("masked_share", "masked share of gradient", "{:.1%}"))


def markdown(results: list[tuple[str, dict]]) -> str:
    """One row per (run, label group)."""
    header = "| run | method | labels | samples | " + " | ".join(c[1] for c in COLUMNS) + " |"
    lines = [header, "|" + " --- |" * (4 + len(COLUMNS))]
    for run_dir, result in results:
        summary = result["summary"]
        method = ("SANM(CE)" if summary["sanm"] else "CE") if summary["method"] == "ce" else (
            summary["method"] + (" + SANM" if summary["sanm"] else ""))
        for group in ("correct", "wrong"):
            m = result[group]
            lines.append(f"| {os.path.basename(os.path.normpath(run_dir))} | {method} | {group} | "
                         f"{m['samples']} | " + " | ".join(fmt.format(m[key])
                                                           for key, _, fmt in COLUMNS) + " |")
    return "\n".join(lines) + "\n"


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(prog="python -m benchmarks mechanism", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("runs", nargs="+", help="finished `keras-sanm train` folders")
    parser.add_argument("--samples", type=int, default=256,
                        help="samples per group (correct / wrong label)")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--out", default=None, help="also write the table to this file")
    args = parser.parse_args(argv)
    if args.samples < 1:
        parser.error("--samples must be at least 1")
    check_finished_runs(parser, args.runs)
    show_page(markdown([(run, measure_run(run, args.samples, args.seed)) for run in args.runs]),
              args.out)
    return 0


def check_finished_runs(parser: argparse.ArgumentParser, runs: list[str]) -> None:
    """Stops with a usage error unless every folder in `runs` holds a finished run."""
    for run in runs:
        if not os.path.exists(os.path.join(run, "model.keras")):
            parser.error(f"{run} is not a finished run (no model.keras)")


def show_page(page: str, out: str | None) -> None:
    """Prints a result table, and writes it to `out` too when given."""
    if out:
        with open(out, "w") as f:
            f.write(page)
    print(page)


if __name__ == "__main__":
    sys.exit(main())
