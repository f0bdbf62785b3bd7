"""CE vs SANM(CE) on full CIFAR-10 within a fixed time budget (a short GPU check).

With `--pretrain-seconds S` (default 150) the base network is first
pretrained with SimCLR (`keras_sanm.pretrain`) on the training images
without their labels, for as many epochs as end within `S` seconds (at
least one), and both models start from those weights: the check then asks
whether SANM(CE) beats CE from a self-supervised start. The kNN accuracy
of the features (k = 200 cosine; 10,000 training images with their clean
labels as memory, the test images measured) before and after it goes into
`results.md` and each `summary.json`. `--pretrain-seconds 0` starts both
from random weights, as before.

One process loads the data once, builds both models (PreAct ResNet-18,
`mixed_bfloat16` by default) and trains them in turn, one epoch each, with
the same seed, noisy labels, data order and number of epochs. The first two
epochs of each (the first includes compilation) measure the epoch times;
the number of epochs `E` is then the most that fits the budget for both
models, and the learning rate of both drops by 10 at epoch `E // 2`, the
reference schedule (150 of 300) scaled to the run (with `E < 4` there is no
drop: it would fall inside the calibration epochs). Each model's run folder
gets `summary.json`, `history.json` and `log.csv` as from `keras-sanm
train`, and `<out>/results.md` the tables of `python -m benchmarks accuracy`.

    python -m benchmarks.harness.gpu_check --data-dir DATA --out results/gpu_check \\
        --budget-seconds 480
    bash benchmarks/gpu_check.sh DATA results/gpu_check 480   # on the GPU machine
"""

from __future__ import annotations

import argparse
import csv
import json
import os
import sys
import time

# The epochs the budget may give at most (the reference CE runs 300).
MAX_EPOCHS = 300


def plan_epochs(budget_seconds: float, elapsed: float, epoch_seconds: list[float],
                done: int, floor: int = 2) -> int:
    """The most epochs per model that fit the budget.

    Args:
        budget_seconds: training time allowed for all models together.
        elapsed: seconds spent so far.
        epoch_seconds: seconds of one epoch of each model (compilation excluded).
        done: epochs each model has trained already.
        floor: never fewer than this.

    Returns:
        The total epoch count `E >= max(done, floor)`.
    """
    per_round = sum(epoch_seconds)
    extra = int(max(0.0, budget_seconds - elapsed) // per_round) if per_round > 0 else 0
    return int(min(MAX_EPOCHS, max(floor, done, done + extra)))


def drop_epochs(epochs: int, calibrated: int) -> tuple[int, ...]:
    """The epoch of the learning-rate drop: half of the planned epochs, as the
    reference drops at 150 of 300; none when half falls inside the
    `calibrated` epochs already trained (a run of 2 or 3 epochs)."""
    return (epochs // 2,) if epochs // 2 >= calibrated else ()


def pretrained_start(args, data, start: float):
    """SimCLR on the training images (no labels) within `args.pretrain_seconds`.

    Returns:
        `(weights, record)`: the pretrained base's weights and
        `{"epochs", "seconds", "knn_before", "knn_after"}`.
    """
    import keras

    import keras_sanm
    from keras_sanm.pretraining import RepresentationMonitor

    class StopAfter(keras.callbacks.Callback):
        def __init__(self, seconds):
            super().__init__()
            self.deadline, self.epochs = time.time() + seconds, 0

        def on_epoch_end(self, epoch, logs=None):
            self.epochs = epoch + 1
            if time.time() >= self.deadline:
                self.model.stop_training = True

    keras.utils.set_random_seed(args.seed)
    base = keras_sanm.backbones.PreActResNet18(data.num_classes, width=args.width)
    memory = min(10_000, len(data.y_train))
    monitor = RepresentationMonitor((data.x_train[:memory], data.y_train[:memory]),
                                    (data.x_test, data.y_test), every=MAX_EPOCHS + 1)
    stop = StopAfter(args.pretrain_seconds)
    tick = time.time()
    keras_sanm.pretrain(base, data.x_train, epochs=MAX_EPOCHS,
                        batch_size=min(args.pretrain_batch_size, len(data.y_train)),
                        preprocessing=keras_sanm.ImagePreprocessing(mean=data.mean, std=data.std),
                        callbacks=[monitor, stop], verbose=0, seed=args.seed)
    seconds = time.time() - tick
    record = {"epochs": stop.epochs, "seconds": seconds,
              "knn_before": monitor.measured[0]["knn_accuracy"],
              "knn_after": monitor.measure()["knn_accuracy"]}
    print(f"SimCLR pretraining: {record['epochs']} epochs in {seconds:.0f} s, kNN accuracy "
          f"{record['knn_before']:.4f} -> {record['knn_after']:.4f} "
          f"({time.time() - start:.0f} s)", flush=True)
    return base.get_weights(), record


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(prog="python -m benchmarks.harness.gpu_check",
                                     description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--data-dir", default="../shared/data/cifar10")
    parser.add_argument("--out", default=os.path.join("results", "gpu_check"))
    parser.add_argument("--budget-seconds", type=float, default=480.0,
                        help="training time for both models together (data loading and "
                             "compilation included)")
    parser.add_argument("--min-epochs", type=int, default=2,
                        help="train at least this many epochs, even past the budget")
    parser.add_argument("--noise", default="sym:0.5")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--train-size", type=int, default=None, help="default: all 50,000")
    parser.add_argument("--test-size", type=int, default=None, help="default: all 10,000")
    parser.add_argument("--width", type=int, default=64)
    parser.add_argument("--batch-size", type=int, default=64)
    parser.add_argument("--dtype-policy", default="mixed_bfloat16")
    parser.add_argument("--pretrain-seconds", type=float, default=150.0,
                        help="SimCLR pretraining of the base before both models, part of the "
                             "budget (0: both start from random weights)")
    parser.add_argument("--pretrain-batch-size", type=int, default=512)
    args = parser.parse_args(argv)
    start = time.time()

    import keras
    import numpy as np

    import keras_sanm
    from benchmarks.harness.accuracy import Budget, Cell, markdown, provenance, run_row
    from keras_sanm.data import IndexedDataset, inject_noise
    from keras_sanm.training.callbacks import EpochLearningRate, LabelFitMonitor

    mode, rate = args.noise.split(":")
    data = keras_sanm.datasets.load("cifar10", args.data_dir, args.train_size, args.test_size,
                                    seed=args.seed, download=False)
    noisy = inject_noise(data.y_train, data.num_classes, mode, float(rate))
    x_test = data.x_test
    print(f"{len(noisy)} training / {len(x_test)} test images, "
          f"{np.mean(noisy != data.y_train):.1%} wrong labels, backend "
          f"{keras.backend.backend()}, {args.dtype_policy} ({time.time() - start:.0f} s)",
          flush=True)

    runs = {}
    previous = keras.config.dtype_policy()
    keras.config.set_dtype_policy(args.dtype_policy)
    try:
        start_weights, pretraining = None, None
        if args.pretrain_seconds > 0:
            start_weights, pretraining = pretrained_start(args, data, start)
        for sanm in (False, True):
            keras.utils.set_random_seed(args.seed)
            base = keras_sanm.backbones.PreActResNet18(data.num_classes, width=args.width)
            if start_weights is not None:
                base.set_weights(start_weights)
            model = keras_sanm.wrap(base, method="ce", sanm=sanm, seed=args.seed,
                                    preprocessing=keras_sanm.ImagePreprocessing(
                                        mean=data.mean, std=data.std))
            # The drop is placed once the epoch count is known (`EpochLearningRate`).
            model.compile(lr_drop_epochs=(MAX_EPOCHS,))
            train = IndexedDataset(data.x_train, noisy, args.batch_size, data.num_classes,
                                   augment="weak", seed=args.seed,
                                   clean_labels=data.y_train)
            runs[sanm] = {"model": model, "train": train, "history": {}, "seconds": [],
                          "monitor": LabelFitMonitor(data.x_train, noisy, data.y_train)}
    finally:
        keras.config.set_dtype_policy(previous)

    epochs, epoch = 2, 0  # two calibration epochs, then the planned count
    while epoch < epochs:
        for sanm, run in runs.items():
            tick = time.time()
            callbacks = [run["monitor"]] if epoch + 1 == epochs else []
            logs = run["model"].fit(run["train"], epochs=epoch + 1, initial_epoch=epoch,
                                    validation_data=(x_test, data.y_test), verbose=0,
                                    callbacks=callbacks).history
            run["seconds"].append(time.time() - tick)
            for key, values in logs.items():
                run["history"].setdefault(key, []).extend(float(v) for v in values)
            print(f"{'SANM(CE)' if sanm else 'CE':8s} epoch {epoch + 1}: val_accuracy "
                  f"{logs['val_accuracy'][-1]:.4f} ({run['seconds'][-1]:.1f} s)", flush=True)
        epoch += 1
        if epoch == 2:
            epochs = plan_epochs(args.budget_seconds, time.time() - start,
                                 [run["seconds"][1] for run in runs.values()], epoch,
                                 floor=args.min_epochs)
            drops = drop_epochs(epochs, epoch)
            for run in runs.values():
                run["model"]._lr_schedule = EpochLearningRate(0.02, drops, 0.1)
            print(f"planned {epochs} epochs per model, learning rate /10 from epoch "
                  f"{drops[0] if drops else 'never (too few epochs)'}", flush=True)

    os.makedirs(args.out, exist_ok=True)
    rows = []
    for sanm, run in runs.items():
        cell = f"ce{'_sanm' if sanm else ''}_{args.noise.replace(':', '')}_s{args.seed}"
        folder = os.path.join(args.out, cell)
        os.makedirs(folder, exist_ok=True)
        history, test_acc = run["history"], run["history"]["val_accuracy"]
        # Epochs before the last have no label-fit measurement: NaN, as from `keras-sanm train`.
        for name in LabelFitMonitor.NAMES:
            history[name] = [float("nan")] * (len(test_acc) - len(history.get(name, []))) + \
                history.get(name, [])
        summary = {
            "dataset": "cifar10", "method": "ce", "sanm": sanm, "noise": args.noise,
            # The masked copies' targets SANM(CE) trained with (the tables name them).
            "masked_targets": getattr(run["model"], "masked_targets", None),
            "actual_noise_rate": float(np.mean(noisy != data.y_train)),
            "backbone": "preact_resnet18", "width": args.width,
            "backend": keras.backend.backend(), "dtype_policy": args.dtype_policy,
            "epochs": epochs, "lr_drop_epochs": list(drops),
            "learning_rates": sorted(set(history["learning_rate"]), reverse=True),
            "batch_size": args.batch_size, "seed": args.seed,
            "train_size": len(noisy), "test_size": len(x_test),
            **{name: history[name][-1] for name in LabelFitMonitor.NAMES},
            "best_test_accuracy": max(test_acc), "last_test_accuracy": test_acc[-1],
            "mean_last10_test_accuracy": float(np.mean(test_acc[-10:])),
            "wall_seconds": sum(run["seconds"]),
            "epoch_seconds": run["seconds"],
            "train_samples_per_second": epochs * len(noisy) / sum(run["seconds"]),
            "init": "simclr" if pretraining else None, "pretraining": pretraining,
        }
        with open(os.path.join(folder, "summary.json"), "w") as f:
            json.dump(summary, f, indent=1)
        with open(os.path.join(folder, "history.json"), "w") as f:
            json.dump(history, f, indent=1)
        with open(os.path.join(folder, "log.csv"), "w", newline="") as f:
            writer = csv.writer(f)
            keys = sorted(history)
            writer.writerow(["epoch", *keys])
            writer.writerows([e, *(history[k][e] for k in keys)] for e in range(len(test_acc)))
        rows.append(run_row(Cell("ce", sanm, args.noise, args.seed), folder))
    budget = Budget(backend=keras.backend.backend(), backbone="preact_resnet18",
                    train_size=args.train_size, test_size=args.test_size, noises=(args.noise,),
                    seeds=(args.seed,), epochs={"ce": epochs}, warmup_epochs={},
                    batch_size=args.batch_size, dtype_policy=args.dtype_policy,
                    width=args.width, lr_drop_fraction=0.5 if drops else None)
    command = "python -m benchmarks.harness.gpu_check " + " ".join(
        argv if argv is not None else sys.argv[1:])
    start_text = ("Both models start from random weights." if pretraining is None else
                  f"Both models start from the same SimCLR pretraining: {pretraining['epochs']} "
                  f"epochs on the {len(noisy)} training images without labels in "
                  f"{pretraining['seconds']:.0f} s; kNN accuracy of the features "
                  f"{100 * pretraining['knn_before']:.2f}% before, "
                  f"{100 * pretraining['knn_after']:.2f}% after.")
    page = markdown(rows, provenance(command, "gpu-check", budget)
                    + f"\n\n{start_text} Total time {time.time() - start:.0f} s (budget "
                    f"{args.budget_seconds:.0f} s).")
    with open(os.path.join(args.out, "results.md"), "w") as f:
        f.write(page)
    print("\n" + page, flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
