"""How fast each method learns an easy noisy problem with `compile()` defaults, with controls.

The problem: 10 classes, 32x32 images of noise with a 12x12 square whose
colour gives the class (a distinct colour per class), 1,500 training images
with 40% symmetric noise (the reference generator), 500 clean test images;
a two-convolution CNN. Every method runs with its `compile()` defaults
(the reference optimizer and learning-rate schedule, scaled to the run's
epochs) and batch 64 unless the row says otherwise. The controls separate
a method's rule from its optimizer, schedule and batch size:

* `cdr noise_rate=0`: every parameter critical, i.e. cross-entropy with
  CDR's optimizer and schedule, through CDR's code path.
* `cdr ... no lr drop`: CDR without its learning-rate drops (the reference
  drops at epochs 39 and 79 of 200, which a short run scales down).
* `ce batch 128`: cross-entropy with ELR+'s batch size (half the steps).
* `elr_plus lambda_elr=0`: ELR+ without its regulariser (two networks, mixup,
  weight averaging); `elr_plus batch 64`: with CE's batch size.

Prints test accuracy after epochs 5, 10 and the last, per seed, and writes
the table to `--out`.

    python benchmarks/default_schedules.py --epochs 15 --seeds 0,1
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import time

import numpy as np

# name -> (method, sanm, wrap options, compile options, batch size or None for the method's)
SETTINGS = {
    "ce": ("ce", False, {}, {}, 64),
    "sanm(ce)": ("ce", True, {}, {}, 64),
    "cdr noise_rate=0.4": ("cdr", False, {"noise_rate": 0.4}, {}, 64),
    "cdr noise_rate=0": ("cdr", False, {"noise_rate": 0.0}, {}, 64),
    "cdr noise_rate=0.4 no lr drop": ("cdr", False, {"noise_rate": 0.4},
                                       {"lr_drop_epochs": ()}, 64),
    "sanm(cdr) noise_rate=0.4": ("cdr", True, {"noise_rate": 0.4}, {}, 64),
    "ce batch 128": ("ce", False, {}, {}, 128),
    "elr_plus": ("elr_plus", False, {}, {}, None),
    "elr_plus lambda_elr=0": ("elr_plus", False, {"lambda_elr": 0.0}, {}, None),
    "elr_plus batch 64": ("elr_plus", False, {}, {}, 64),
}


def easy_problem(seed: int, train: int = 1500, test: int = 500, noise: float = 0.4):
    """uint8 images, noisy training labels, true training labels, clean test set."""
    import keras_sanm

    rng = np.random.default_rng(100 + seed)
    colours = np.array([[230, 25, 75], [60, 180, 75], [255, 225, 25], [0, 130, 200],
                        [245, 130, 48], [145, 30, 180], [70, 240, 240], [240, 50, 230],
                        [250, 250, 250], [0, 0, 0]], np.float32)
    labels = rng.integers(0, 10, train + test)
    images = rng.normal(128, 40, (train + test, 32, 32, 3))
    for i, label in enumerate(labels):
        r, c = rng.integers(0, 21, 2)
        images[i, r:r + 12, c:c + 12] = colours[label]
    images = np.clip(images, 0, 255).astype(np.uint8)
    noisy = keras_sanm.data.inject_noise(labels[:train], 10, "sym", noise, seed=seed)
    return images[:train], noisy, labels[:train], images[train:], labels[train:]


def two_conv_cnn():
    import keras
    from keras import layers

    inputs = keras.Input((32, 32, 3))
    x = layers.Conv2D(16, 3, padding="same", activation="relu")(inputs)
    x = layers.MaxPooling2D()(x)
    x = layers.Conv2D(32, 3, padding="same", activation="relu", name="feature_map")(x)
    x = layers.GlobalAveragePooling2D()(x)
    return keras.Model(inputs, layers.Dense(10)(x))


def run(name: str, seed: int, epochs: int) -> list[float]:
    """Test accuracy after every epoch."""
    import keras

    import keras_sanm

    method, sanm, options, compile_options, batch_size = SETTINGS[name]
    x, noisy, _, x_test, y_test = easy_problem(seed)
    keras.utils.set_random_seed(seed)
    model = keras_sanm.wrap(two_conv_cnn(), method=method, sanm=sanm, seed=seed, **options)
    model.compile(**compile_options)
    history = model.fit(x, noisy, batch_size=batch_size, epochs=epochs, verbose=0,
                        validation_data=(x_test, y_test))
    return [float(v) for v in history.history["val_accuracy"]]


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--epochs", type=int, default=15)
    parser.add_argument("--seeds", default="0,1")
    parser.add_argument("--settings", default=",".join(SETTINGS))
    parser.add_argument("--out", default="results/default_schedules.md")
    args = parser.parse_args(argv)
    seeds = [int(s) for s in args.seeds.split(",")]
    names = [n for n in args.settings.split(",") if n]
    unknown = sorted(set(names) - set(SETTINGS))
    if unknown:
        parser.error(f"--settings: unknown {unknown}; choose from {sorted(SETTINGS)}")
    marks = sorted({min(5, args.epochs), min(10, args.epochs), args.epochs})
    lines = [f"| setting | {' | '.join(f'epoch {m}' for m in marks)} | seconds |",
             "| --- |" + " --- |" * (len(marks) + 1)]
    for name in names:
        started = time.time()
        curves = [run(name, seed, args.epochs) for seed in seeds]
        cells = []
        for m in marks:
            values = [c[m - 1] for c in curves]
            cells.append(f"{statistics.mean(values):.3f} ({', '.join(f'{v:.2f}' for v in values)})")
        lines.append(f"| {name} | {' | '.join(cells)} | {time.time() - started:.0f} |")
        print(lines[-1], flush=True)
    os.makedirs(os.path.dirname(args.out) or ".", exist_ok=True)
    with open(args.out, "w") as f:
        f.write("\n".join(lines) + "\n")
    print("\n".join(lines))
    return 0


if __name__ == "__main__":
    sys.exit(main())
