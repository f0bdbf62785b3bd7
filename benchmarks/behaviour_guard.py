"""Fingerprints of short training runs, to show that a refactor changes no behaviour.

Every method, plain and SANM, trains two epochs on the current Keras backend
from fixed seeds (64 generated 32x32 uint8 images, four classes, 30% of the
labels flipped; the package's default preprocessing and augmentation). For
each run it records the per-epoch logs exactly (as hexadecimal floats), a
SHA-256 of every model and optimizer variable, and one of the label quality
afterwards. `--record FILE` writes them; `--check FILE` trains again and
names every run whose logs or weights differ, with the largest weight
difference (from the weights kept beside the record).

Training on CPU is deterministic run to run on each backend, so a refactor
that keeps behaviour gives identical fingerprints on the same machine.

    KERAS_BACKEND=jax python benchmarks/behaviour_guard.py --record results/guard/jax.json
    # ... refactor ...
    KERAS_BACKEND=jax python benchmarks/behaviour_guard.py --check results/guard/jax.json
"""

from __future__ import annotations

import argparse
import hashlib
import json
import os
import sys

import keras
import numpy as np

import keras_sanm

# method -> wrap options (small batches and a one-epoch warm-up for the tiny data).
METHODS = {
    "ce": {},
    "coteaching": {"forget_rate": 0.2},
    "cdr": {"noise_rate": 0.2},
    "elr_plus": {"batch_size": 16},
    "dividemix": {"batch_size": 16, "warmup_epochs": 1},
    "ssr": {"batch_size": 16, "k": 8},
}
EPOCHS, BATCH, SEED = 2, 16, 7


def problem(n: int = 64, num_classes: int = 4, seed: int = SEED):
    """uint8 noise images with a coloured square whose colour is the class; some labels flipped."""
    rng = np.random.default_rng(seed)
    labels = rng.integers(0, num_classes, n)
    images = rng.normal(110, 30, (n, 32, 32, 3))
    colours = np.array([[250, 30, 30], [30, 250, 30], [30, 30, 250], [20, 20, 20]])
    for i, label in enumerate(labels):
        row, col = rng.integers(0, 17, 2)
        images[i, row:row + 16, col:col + 16] = colours[label]
    noisy = labels.copy()
    flipped = rng.random(n) < 0.3
    noisy[flipped] = (labels[flipped] + rng.integers(1, num_classes, flipped.sum())) % num_classes
    return np.clip(images, 0, 255).astype("uint8"), noisy, labels


def digest(arrays) -> str:
    sha = hashlib.sha256()
    for array in arrays:
        array = np.ascontiguousarray(array)
        sha.update(str((array.dtype, array.shape)).encode())
        sha.update(array.tobytes())
    return sha.hexdigest()


def state_arrays(model) -> dict[str, np.ndarray]:
    """Every model and optimizer variable, by path, as numpy."""
    arrays = {f"model/{v.path}": keras.ops.convert_to_numpy(v) for v in model.variables}
    # A two-network model's optimizer holds one optimizer per network.
    optimizers = [model.optimizer, *getattr(model.optimizer, "optimizers", [])]
    for k, optimizer in enumerate(optimizers):
        arrays.update({f"optimizer{k}/{v.path}": keras.ops.convert_to_numpy(v)
                       for v in optimizer.variables})
    return arrays


def run(method: str, sanm: bool, masked_targets: str | None = None
        ) -> tuple[dict, dict[str, np.ndarray]]:
    """One short run's fingerprint and its final variables.

    `masked_targets` is given to the SANM versions that take it (their default
    when `None`), e.g. `"label"` to compare with records made while the label
    was the default.
    """
    images, noisy, clean = problem()
    keras.utils.set_random_seed(SEED)
    base = keras_sanm.backbones.SmallCNN(num_classes=4, input_shape=images.shape[1:])
    options = dict(METHODS[method])
    if sanm and masked_targets and keras_sanm.methods.get(method).masked_targets:
        options["masked_targets"] = masked_targets
    model = keras_sanm.wrap(base, method=method, sanm=sanm, seed=SEED, **options)
    model.compile()
    # (Methods that build their own batches take the batch size as an option.)
    batch = None if keras_sanm.methods.get(method).batch_size_option else BATCH
    history = model.fit(images[:48], noisy[:48], batch_size=batch, epochs=EPOCHS, verbose=0,
                        validation_data=(images[48:], clean[48:]))
    arrays = state_arrays(model)
    quality = model.label_quality(images[:48], noisy[:48])
    logs = {k: [float(v).hex() for v in values] for k, values in sorted(history.history.items())}
    return {"logs": logs, "weights": digest(arrays[k] for k in sorted(arrays)),
            "label_quality": digest([np.asarray(quality)])}, arrays


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    mode = parser.add_mutually_exclusive_group(required=True)
    mode.add_argument("--record", metavar="FILE", help="write the fingerprints to FILE")
    mode.add_argument("--check", metavar="FILE", help="compare with the fingerprints in FILE")
    parser.add_argument("--methods", default=",".join(METHODS),
                        help="comma-separated subset of " + ",".join(METHODS))
    parser.add_argument("--masked-targets", default=None, choices=("refined", "label"),
                        help="targets of the masked copies of the SANM versions that take "
                             "them (default: theirs); 'label' reproduces records made "
                             "before the refined label became the default")
    parser.add_argument("--add", action="store_true",
                        help="with --record: add these methods' runs to FILE, keeping the "
                             "others recorded there")
    args = parser.parse_args(argv)
    path = args.record or args.check
    backend = keras.backend.backend()
    expected = None
    if args.check:
        with open(path) as f:
            expected = json.load(f)
        if expected["backend"] != backend:
            parser.error(f"{path} was recorded on {expected['backend']}; this is {backend}.")
    weights_path = os.path.splitext(path)[0] + ".weights.npz"
    saved_weights = dict(np.load(weights_path)) if args.check and os.path.exists(weights_path) else {}
    runs, kept, differ = {}, {}, []
    for method in args.methods.split(","):
        if method not in METHODS:
            parser.error(f"unknown method {method!r}; choose from {sorted(METHODS)}")
        for sanm in (False, True):
            name = f"{method}{'_sanm' if sanm else ''}"
            print(f"{backend} {name} ...", end=" ", flush=True)
            runs[name], arrays = run(method, sanm, args.masked_targets)
            kept.update({f"{name}|{k}": v for k, v in arrays.items()})
            if expected is None:
                print("recorded", flush=True)
                continue
            before = expected["runs"].get(name)
            if before == runs[name]:
                print("identical", flush=True)
                continue
            differ.append(name)
            parts = [part for part in ("logs", "weights", "label_quality")
                     if before is None or before[part] != runs[name][part]]
            largest = max((float(np.max(np.abs(saved_weights[f"{name}|{k}"].astype("float64")
                                                - v.astype("float64"))))
                           for k, v in arrays.items() if f"{name}|{k}" in saved_weights
                           and saved_weights[f"{name}|{k}"].shape == v.shape), default=None)
            print(f"DIFFERENT ({', '.join(parts)}; largest weight difference {largest})",
                  flush=True)
    if args.record:
        if args.add and os.path.exists(path):  # keep the runs recorded before
            with open(path) as f:
                earlier = json.load(f)
            if earlier["backend"] != backend:
                parser.error(f"{path} was recorded on {earlier['backend']}; this is {backend}.")
            runs = {**earlier["runs"], **runs}
            if os.path.exists(weights_path):
                kept = {**dict(np.load(weights_path)), **kept}
        os.makedirs(os.path.dirname(os.path.abspath(path)), exist_ok=True)
        with open(path, "w") as f:
            json.dump({"backend": backend, "keras": keras.__version__, "runs": runs}, f, indent=1)
        np.savez(weights_path, **kept)
        print(f"wrote {path} and {weights_path}")
        return 0
    print(f"{len(runs) - len(differ)} of {len(runs)} runs identical"
          + (f"; different: {', '.join(differ)}" if differ else ""))
    return 1 if differ else 0


if __name__ == "__main__":
    sys.exit(main())
