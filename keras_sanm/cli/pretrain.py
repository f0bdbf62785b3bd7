"""`keras-sanm pretrain`: SimCLR pretraining of a backbone on a dataset's training images.

The images are the training subset that `keras-sanm train` draws with the
same `--dataset`, `--train-size` and `--seed`, plus `--extra-images`
further training images of the split without their labels (never test
images). The run folder gets the base model's weights (`base.weights.h5`,
for `keras-sanm train --init FOLDER`), a checkpoint after every epoch
(`--resume` continues it), the kNN / linear-probe read-outs of the features
against the clean labels of the subset and the test subset (`readouts.csv`;
they only measure) and `summary.json`.
"""

from __future__ import annotations

import json
import os

WEIGHTS = "base.weights.h5"
SUMMARY = "summary.json"
# Settings a resumed pretraining must share with the run it continues (`--epochs` may grow).
RUN_SETTINGS = ("dataset", "train_size", "test_size", "extra_images", "backbone", "width",
                "batch_size", "seed", "temperature")


def add_parser(sub, positive_int, non_negative_int, existing_path, backends, backend_help,
               datasets, backbones) -> None:
    """Adds the `pretrain` command to the CLI's subparsers."""
    parser = sub.add_parser("pretrain", help="self-supervised (SimCLR) pretraining of a "
                            "backbone on a dataset's images, for train --init")
    parser.add_argument("--dataset", default="cifar10", choices=datasets,
                        help="dataset whose training images are used (default: cifar10)")
    parser.add_argument("--data-dir", default=None, type=existing_path,
                        help="local copy (<dataset>_jpeg.npz) or tensorflow-datasets folder")
    parser.add_argument("--train-size", type=positive_int, default=None,
                        help="the training subset train draws with the same --seed (default: all)")
    parser.add_argument("--test-size", type=positive_int, default=2000,
                        help="test images the read-outs measure on (default: 2000)")
    parser.add_argument("--extra-images", type=non_negative_int, default=0,
                        help="further training-split images, without labels (default: 0)")
    parser.add_argument("--backbone", default="preact_resnet18", choices=backbones,
                        help="network to pretrain (default: preact_resnet18)")
    parser.add_argument("--width", type=positive_int, default=None,
                        help="base channel count of preact_resnet18 / resnet18")
    parser.add_argument("--epochs", type=positive_int, default=100,
                        help="passes over the images (default: 100)")
    parser.add_argument("--batch-size", type=positive_int, default=256,
                        help="images per batch, each giving two views (default: 256)")
    parser.add_argument("--temperature", type=float, default=0.5,
                        help="NT-Xent temperature (default: 0.5)")
    parser.add_argument("--readout-every", type=positive_int, default=10,
                        help="epochs between kNN read-outs (default: 10)")
    parser.add_argument("--probe", action="store_true",
                        help="also a linear probe at each read-out (slower)")
    parser.add_argument("--seed", type=int, default=0,
                        help="seed of the subset draw (as train's), the weights and the views")
    parser.add_argument("--output", required=True, help="run folder")
    parser.add_argument("--resume", action="store_true",
                        help="continue the run checkpointed in --output")
    parser.add_argument("--backend", choices=backends, default=None, help=backend_help)
    parser.add_argument("--verbose", type=int, default=1, choices=(0, 1, 2),
                        help="progress: 0 silent, 1 bar, 2 a line per epoch (default: 1)")


def pretraining_images(args):
    """`(images, data)`: the images to pretrain on and the dataset subset they start from."""
    import numpy as np

    import keras_sanm

    try:
        data = keras_sanm.datasets.load(args.dataset, args.data_dir, args.train_size,
                                        args.test_size, seed=args.seed)
        images = data.x_train
        if args.extra_images:
            extra = keras_sanm.datasets.other_training_images(
                args.dataset, args.data_dir, args.extra_images, args.train_size, args.seed)
            images = np.concatenate([images, extra])
    except (FileNotFoundError, ImportError, ValueError) as error:
        raise SystemExit(f"--dataset {args.dataset}: {error}") from None
    return images, data


def pretrain_command(args) -> dict:
    import keras

    import keras_sanm
    from keras_sanm.pretraining import RepresentationMonitor, pretrain

    checkpoint_dir = os.path.join(args.output, "checkpoint")
    latest = keras_sanm.TrainingBackup.latest(checkpoint_dir)
    if latest is not None and not args.resume:
        raise SystemExit(f"{args.output} holds a pretraining checkpointed after epoch "
                         f"{latest['epoch']}. Rerun the same command with --resume to continue "
                         "it, or pass another --output.")
    images, data = pretraining_images(args)
    os.makedirs(args.output, exist_ok=True)
    print(f"{data.name}: pretraining on {len(images)} images ({len(data.x_train)} of the "
          f"training subset, {args.extra_images} more without labels), backend "
          f"{keras.backend.backend()}")
    keras.utils.set_random_seed(args.seed)
    base = keras_sanm.backbones.get(args.backbone, data.num_classes, images.shape[1:],
                                    width=args.width)
    backup = keras_sanm.TrainingBackup(
        checkpoint_dir, run_config={name: getattr(args, name) for name in RUN_SETTINGS})
    monitor = RepresentationMonitor(
        (data.x_train, data.y_train), (data.x_test, data.y_test), every=args.readout_every,
        probe=args.probe, csv_path=os.path.join(args.output, "readouts.csv"))
    preprocessing = keras_sanm.ImagePreprocessing(mean=data.mean, std=data.std)
    pretrain(base, images, epochs=args.epochs, batch_size=args.batch_size,
             temperature=args.temperature, preprocessing=preprocessing,
             callbacks=[backup, monitor], verbose=args.verbose, seed=args.seed)
    base.save_weights(os.path.join(args.output, WEIGHTS))
    summary = {
        "dataset": data.name, "method": "simclr", "backend": keras.backend.backend(),
        **{name: getattr(args, name) for name in RUN_SETTINGS}, "epochs": args.epochs,
        "images": len(images), "num_classes": data.num_classes,
        "image_shape": list(images.shape[1:]),
        "readouts": {str(epoch): values for epoch, values in sorted(monitor.measured.items())},
        "wall_seconds": backup.training_seconds,
        "loss": backup.history.get("loss", []),
        "weights": WEIGHTS,
    }
    with open(os.path.join(args.output, SUMMARY), "w") as f:
        json.dump(summary, f, indent=1)
    last = monitor.measured[max(monitor.measured)]
    print(f"kNN accuracy {monitor.measured[0]['knn_accuracy']:.4f} at the start, "
          f"{last['knn_accuracy']:.4f} after {args.epochs} epochs; weights in "
          f"{os.path.join(args.output, WEIGHTS)}")
    return summary


def init_weights(path: str, backbone: str, width, num_classes: int, image_shape) -> str:
    """The weights file of `train --init PATH`, checked against the run's network.

    Args:
        path: a `keras-sanm pretrain` folder, or a `.weights.h5` file of the same network.
        backbone, width, num_classes, image_shape: the run's network.

    Returns:
        The `.weights.h5` path to load into the base model.
    """
    if not os.path.isdir(path):
        if not path.endswith(".weights.h5"):
            raise SystemExit(f"--init takes a keras-sanm pretrain folder or a .weights.h5 file; "
                             f"got {path!r}.")
        return path
    summary_path = os.path.join(path, SUMMARY)
    if not os.path.exists(summary_path):
        raise SystemExit(f"--init {path}: no {SUMMARY}; the pretraining has not finished "
                         "(rerun keras-sanm pretrain with --resume).")
    with open(summary_path) as f:
        summary = json.load(f)
    theirs = (summary["backbone"], summary["width"], summary["num_classes"],
              list(summary["image_shape"]))
    ours = (backbone, width, num_classes, list(image_shape))
    if theirs != ours:
        raise SystemExit(
            f"--init {path} was pretrained for backbone {theirs[0]}, width {theirs[1]}, "
            f"{theirs[2]} classes, images {theirs[3]}; this run builds {ours[0]}, width "
            f"{ours[1]}, {ours[2]} classes, images {ours[3]}.")
    return os.path.join(path, summary["weights"])
