"""Plain Keras `fit` on the exact data, network and optimizer of `keras-sanm train --no-sanm`.

A control for the package's cross-entropy trainer: the same training subset,
noisy labels, initial weights (same seed, same construction order), batch
order and augmentation (the same `IndexedDataset`), evaluated the same way,
but trained by Keras' own `Model.fit` with a `SparseCategoricalCrossentropy`
loss. Two kinds of weight decay:

* `coupled` (the reference's PyTorch `SGD(weight_decay=...)` and the
  package's): `wd * w` is added to every gradient before momentum; in Keras
  that is an L2 regulariser of `wd / 2` on every weight (`with_coupled_l2`).
* `decoupled`: Keras' own `SGD(weight_decay=wd)`, which shrinks each weight
  by `lr * wd * w` after the update, outside the momentum buffer. With
  momentum 0.9 the coupled decay acts about `1 / (1 - 0.9) = 10` times more
  strongly, so the two are different regularisers with the same number.

The run folder gets the same `summary.json` / `history.json` / `log.csv` as
`keras-sanm train`, so `python -m benchmarks accuracy` tables can read it.

    python -m benchmarks keras-baseline --data-dir ../shared/data/cifar10 --out results/keras_ce \\
        --train-size 1000 --width 16 --epochs 100 --weight-decay-style coupled
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time

import keras
import numpy as np

import keras_sanm
from keras_sanm.data import IndexedDataset, inject_noise, normalize_images
from keras_sanm.training.callbacks import EpochLearningRate, LabelFitMonitor


def with_coupled_l2(model, weight_decay: float):
    """A copy of `model` (same weights) whose every weight carries an L2 penalty
    `weight_decay / 2 * ||w||^2`, so `fit` adds `weight_decay * w` to each gradient.

    Args:
        model: a Functional or Sequential Keras model.
        weight_decay: the coupled decay (PyTorch's `weight_decay`).

    Returns:
        The regularised copy.
    """
    penalty = keras.regularizers.L2(weight_decay / 2.0)
    names = ("kernel_regularizer", "bias_regularizer", "gamma_regularizer",
             "beta_regularizer", "depthwise_regularizer")

    def clone(layer):
        config = layer.get_config()
        for name in names:
            if name in config:
                config[name] = penalty
        return layer.__class__.from_config(config)

    copy = keras.models.clone_model(model, clone_function=clone)
    copy.set_weights(model.get_weights())
    return copy


class ImagesAndLabels(keras.utils.PyDataset):
    """The `(x, y)` batches of an `IndexedDataset`, standardised (Keras would read
    its third element, the label quality, as sample weights; a plain Keras
    model does not preprocess raw images itself)."""

    def __init__(self, source: IndexedDataset, mean, std):
        super().__init__()
        self.source, self.mean, self.std = source, mean, std

    def __len__(self) -> int:
        return len(self.source)

    def __getitem__(self, index):
        images, labels, _ = self.source[index]
        return normalize_images(images, self.mean, self.std), labels

    def on_epoch_end(self):
        self.source.on_epoch_end()


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(prog="python -m benchmarks keras-baseline", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--data-dir", default="../shared/data/cifar10")
    parser.add_argument("--out", required=True, help="run folder")
    parser.add_argument("--train-size", type=int, default=None)
    parser.add_argument("--test-size", type=int, default=2000)
    parser.add_argument("--width", type=int, default=None)
    parser.add_argument("--epochs", type=int, default=100)
    parser.add_argument("--noise", default="sym:0.5")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--batch-size", type=int, default=64)
    parser.add_argument("--weight-decay", type=float, default=5e-4)
    parser.add_argument("--weight-decay-style", choices=("coupled", "decoupled"), default="coupled")
    args = parser.parse_args(argv)
    mode, rate = args.noise.split(":")
    data = keras_sanm.datasets.load("cifar10", args.data_dir, args.train_size, args.test_size,
                                    seed=args.seed)
    # The noisy labels of `keras-sanm train` (the same generator and default seed).
    noisy = inject_noise(data.y_train, data.num_classes, mode, float(rate))
    keras.utils.set_random_seed(args.seed)
    base = keras_sanm.backbones.get("preact_resnet18", data.num_classes,
                                    data.x_train.shape[1:], width=args.width)
    if args.weight_decay_style == "coupled":
        model = with_coupled_l2(base, args.weight_decay)
        optimizer = keras.optimizers.SGD(0.02, momentum=0.9)
    else:
        model = base
        optimizer = keras.optimizers.SGD(0.02, momentum=0.9, weight_decay=args.weight_decay)
    model.compile(optimizer=optimizer,
                  loss=keras.losses.SparseCategoricalCrossentropy(from_logits=True),
                  metrics=["accuracy"])
    train = IndexedDataset(data.x_train, noisy, args.batch_size, data.num_classes,
                           augment="weak", seed=args.seed)
    x_test = normalize_images(data.x_test, data.mean, data.std)
    os.makedirs(args.out, exist_ok=True)
    callbacks = [
        EpochLearningRate(0.02, (max(1, round(args.epochs / 2)),), 0.1),
        LabelFitMonitor(normalize_images(data.x_train, data.mean, data.std), noisy,
                        data.y_train),
        keras.callbacks.CSVLogger(os.path.join(args.out, "log.csv")),
    ]
    start = time.time()
    history = model.fit(ImagesAndLabels(train, data.mean, data.std), epochs=args.epochs, verbose=2,
                        validation_data=(x_test, data.y_test), callbacks=callbacks).history
    seconds = time.time() - start
    test_acc = [float(v) for v in history["val_accuracy"]]
    summary = {
        "trainer": f"keras.Model.fit, {args.weight_decay_style} weight decay",
        "backend": keras.backend.backend(), "seed": args.seed, "width": args.width,
        "train_size": len(noisy), "test_size": len(data.y_test), "epochs": args.epochs,
        "noise": args.noise, "actual_noise_rate": float(np.mean(noisy != data.y_train)),
        **{name: float(history[name][-1]) for name in LabelFitMonitor.NAMES},
        "best_test_accuracy": max(test_acc), "last_test_accuracy": test_acc[-1],
        "mean_last10_test_accuracy": float(np.mean(test_acc[-10:])),
        "wall_seconds": seconds,
        "train_samples_per_second": args.epochs * len(noisy) / seconds,
    }
    with open(os.path.join(args.out, "history.json"), "w") as f:
        json.dump({k: [float(x) for x in v] for k, v in history.items()}, f, indent=1)
    with open(os.path.join(args.out, "summary.json"), "w") as f:
        json.dump(summary, f, indent=1)
    print(json.dumps(summary, indent=1))
    return 0


if __name__ == "__main__":
    sys.exit(main())
