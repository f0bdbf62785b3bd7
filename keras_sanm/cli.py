"""Command line: `keras-sanm train`, `keras-sanm pretrain`, `keras-sanm demo`
and `keras-sanm plot` (the research harness is `python -m benchmarks` in the
repository, not part of the installed package)."""

from __future__ import annotations

import argparse
import json
import os
import sys
import time

from keras_sanm import methods, protocols
from keras_sanm import pretrain_command as pretrain_cli
from keras_sanm.methods.dividemix import WARMUP_AUGMENTS
from keras_sanm.methods.spec import MASKED_TARGETS, MASKED_TARGETS_BEFORE_THE_OPTION

BACKENDS = ("jax", "tensorflow", "torch")


def _parse_noise(text: str):
    try:
        mode, rate = text.split(":")
        rate = float(rate)
    except ValueError:
        raise argparse.ArgumentTypeError(
            f"--noise must look like sym:0.5 or asym:0.4; got {text!r}"
        ) from None
    if mode not in ("sym", "asym") or not 0.0 <= rate <= 1.0:
        raise argparse.ArgumentTypeError(f"--noise: mode sym|asym and rate in [0, 1]; got {text!r}")
    return mode, rate


def _number(kind: type, minimum: float, below: float | None = None):
    """An argparse type: a `kind` (int or float) >= `minimum` and, if given, < `below`."""
    what = "a whole number" if kind is int else "a number"

    def parse(text: str):
        try:
            value = kind(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f"expected {what}; got {text!r}") from None
        if below is not None and not minimum <= value < below:
            raise argparse.ArgumentTypeError(f"must be in [{minimum}, {below}); got {value}")
        if value < minimum:
            raise argparse.ArgumentTypeError(f"must be at least {minimum}; got {value}")
        return value

    return parse


_positive_int = _number(int, 1)
_non_negative_int = _number(int, 0)
_rate = _number(float, 0, 1)


def _existing_path(text: str) -> str:
    """An argparse type: a file or folder that exists (a typo fails here, not deep in a loader)."""
    if not os.path.exists(text):
        raise argparse.ArgumentTypeError(f"no such file or folder: {text!r}")
    return text


# Every method's declaration (keras_sanm/methods/<name>/__init__.py) imports no Keras.
METHOD_NAMES = methods.names()
# The names of `keras_sanm.datasets.DATASETS` and `keras_sanm.backbones.BACKBONES`, repeated
# here because importing those modules imports Keras, which must wait for `--backend`
# (tests/test_cli_and_datasets.py checks that the lists agree).
DATASET_NAMES = ("cifar10", "cifar100", "cifar10_n", "cifar100_n")
# Datasets with real label noise, read from their published files
# (`keras_sanm.data.load_<name>`): their wrong labels are unknown.
REAL_NOISE_DATASETS = ("animal10n", "clothing1m", "webvision")
# Datasets that come with their own noisy labels (CIFAR-N: human annotations).
OWN_LABEL_DATASETS = ("cifar10_n", "cifar100_n") + REAL_NOISE_DATASETS
BACKBONE_NAMES = ("preact_resnet18", "resnet18", "vgg19", "resnet50", "cnn9", "small_cnn")
# The SANM parts that `--sanm-without` can switch off, per method (constructor flags).
ABLATION_PARTS = {spec.name: spec.sanm_parts for spec in map(methods.get, METHOD_NAMES)
                  if spec.sanm_parts}


BACKEND_HELP = ("Keras backend (default: KERAS_BACKEND, else Keras' configured one if "
                "installed, else an installed one)")


def _per_method(value) -> str:
    """`"CE 300, CDR 200, ..."`: `value(spec)` of every registered method, for help texts."""
    return ", ".join(f"{methods.get(name).label} {value(methods.get(name))}"
                     for name in METHOD_NAMES)


def build_parser() -> argparse.ArgumentParser:
    from keras_sanm.presets import PRESETS  # plain Python: importing it does not import Keras

    parser = argparse.ArgumentParser(prog="keras-sanm", description=__doc__)
    sub = parser.add_subparsers(dest="command", required=True)

    train = sub.add_parser("train", help="train one model on a noisy-label dataset")
    train.add_argument("--dataset", default="cifar10", choices=DATASET_NAMES + REAL_NOISE_DATASETS,
                       help="dataset to train on (default: cifar10); animal10n, clothing1m "
                            "and webvision (mini-WebVision) are read from their published "
                            "files in --data-dir, with their own noisy labels")
    train.add_argument("--data-dir", default=None, type=_existing_path,
                       help="folder with <dataset>_jpeg.npz, or a tensorflow-datasets data "
                            "folder (default: tensorflow-datasets' own, downloading if "
                            "needed); for animal10n, clothing1m and webvision the folder "
                            "the dataset unpacks into")
    train.add_argument("--noise", type=_parse_noise, default=None,
                       help="MODE:RATE, e.g. sym:0.5 (default: the preset's, else sym:0.5); "
                            "not for datasets that come with noisy labels")
    train.add_argument("--noise-file", default=None, help="JSON noisy labels to reuse (written if missing)")
    train.add_argument("--method", default="ce", choices=METHOD_NAMES,
                       help="training method ("
                            + ", ".join(methods.get(name).label for name in METHOD_NAMES)
                            + "; " + " and ".join(
                                f"{spec.label}'s {spec.noise_rate_option}" for spec in
                                map(methods.get, METHOD_NAMES) if spec.noise_rate_option)
                            + " default to the --noise rate)")
    train.add_argument("--preset", default=None, choices=PRESETS, metavar="PRESET",
                       help="the reference hyper-parameters of a dataset and noise for the "
                            f"method (keras_sanm.presets): {', '.join(PRESETS)}")
    train.add_argument("--warmup-epochs", type=_non_negative_int, default=None,
                       help="override the method's warm-up length in epochs")
    train.add_argument("--no-sanm", dest="sanm", action="store_false",
                       help="train the plain method, without SANM's masking and decoder")
    train.add_argument("--sanm-without", default=None,
                       help="SANM ablation: comma-separated parts to switch off ("
                            + "; ".join(f"{methods.get(m).label}: {', '.join(parts)}"
                                        for m, parts in ABLATION_PARTS.items()) + ")")
    train.add_argument("--masked-targets", default=None, choices=("refined", "label"),
                       help="SANM versions of "
                            + ", ".join(methods.get(m).label for m in METHOD_NAMES
                                        if methods.get(m).masked_targets)
                            + ": targets of the masked copies before modulation: the refined "
                              "label, sharpened w*y + (1-w)*p (default), or the given label "
                              "(docs/results.md)")
    train.add_argument("--warmup-augment", default=None, choices=WARMUP_AUGMENTS,
                       help="SANM(DivideMix)'s warm-up augmentation (default strong_warmup: the "
                            "SANM code's today; autoaugment: its AutoAugment without the clip, "
                            "as when the paper came out; weak: DivideMix's)")
    train.add_argument("--protocol", default=None, choices=sorted(protocols.PROTOCOLS),
                       help="a real-world dataset's training protocol (keras_sanm.protocols): "
                            "its backbone, batch size and epochs (unless given) and its "
                            "optimizer and learning-rate drops")
    train.add_argument("--mask-aspect", default=None, metavar="SPEC",
                       help="SANM: the boxes' aspect ratio (height / width): 'uniform:d' "
                            "per sample from U(d, 1/d) (default uniform:0.8, the paper's "
                            "best), 'fixed:d' or a number d (1 = square)")
    train.add_argument("--backbone", default=None, choices=BACKBONE_NAMES,
                       help="network (default: the method's, "
                            + _per_method(lambda spec: spec.backbone) + ")")
    train.add_argument("--width", type=_positive_int, default=None,
                       help="base channels of preact_resnet18, resnet18 and vgg19 "
                            "(64, the paper's, by default; "
                            "16 or 32 for CPU runs)")
    train.add_argument("--lr-drop-epochs", default=None,
                       help="comma-separated epochs (0-based) from which the learning rate is "
                            "divided by 10 (default: the reference drops scaled to --epochs, "
                            "e.g. CE's 150 of 300 becomes 50 of 100)")
    train.add_argument("--track-fit-every", type=_positive_int, default=None,
                       help="also measure the fit of correct and wrong training labels every "
                            "N epochs (always measured after the last epoch)")
    train.add_argument("--epochs", type=_positive_int, default=None,
                       help="default: the method's reference count ("
                            + _per_method(lambda spec: spec.reference_epochs)
                            + "; a --preset may set its own, e.g. SANM(DivideMix)'s 361)")
    train.add_argument("--batch-size", type=_positive_int, default=None,
                       help="default: the method's ("
                            + _per_method(lambda spec: spec.batch_size) + ")")
    train.add_argument("--train-size", type=_positive_int, default=None,
                       help="train on a random subset of this many images (default: all)")
    train.add_argument("--test-size", type=_positive_int, default=None,
                       help="test on a random subset of this many images (default: all)")
    train.add_argument("--seed", type=int, default=0,
                       help="seed of the subsets, the noisy labels, the initial weights and "
                            "the batch order (default: 0)")
    train.add_argument("--dtype-policy", default=None,
                       choices=("float32", "mixed_bfloat16", "mixed_float16"),
                       help="Keras dtype policy of the networks: mixed_bfloat16 on a GPU with "
                            "bfloat16 units, mixed_float16 on one without (e.g. a T4; the steps "
                            "then scale the loss dynamically and skip overflowing steps). "
                            "Losses are computed in float32 either way")
    train.add_argument("--init", default=None, type=_existing_path, metavar="PATH",
                       help="start from pretrained weights: a keras-sanm pretrain folder or "
                            "a .weights.h5 file of the same backbone (both networks of a "
                            "two-network method start from them)")
    train.add_argument("--output", default=None, help="run folder (default runs/<name>)")
    train.add_argument("--resume", action="store_true",
                       help="continue the run in --output from its last checkpoint (written "
                            "after every epoch); starts it when there is none. Without this "
                            "flag a folder holding a checkpoint is refused")
    train.add_argument("--backend", choices=BACKENDS, default=None, help=BACKEND_HELP)
    train.add_argument("--verbose", type=int, default=1, choices=(0, 1, 2),
                       help="Keras fit verbosity: 0 no progress output (the run's own "
                            "report and what fit decides still print), 1 progress bar, 2 one "
                            "line per epoch (default: 1)")

    pretrain_cli.add_parser(sub, _positive_int, _non_negative_int, _existing_path, BACKENDS,
                            BACKEND_HELP, DATASET_NAMES, BACKBONE_NAMES)

    demo = sub.add_parser("demo", help="CE vs SANM(CE) on a small noisy problem, offline")
    demo.add_argument("--data-dir", default=None, type=_existing_path,
                      help="use a CIFAR-10 subset from this folder (with cifar10_jpeg.npz) "
                           "instead of scikit-learn's digits")
    demo.add_argument("--epochs", type=_positive_int, default=None,
                      help="epochs per model (default: 40 on digits, 15 on CIFAR-10)")
    demo.add_argument("--noise-rate", type=_rate, default=0.4,
                      help="share of training labels redrawn uniformly (default: 0.4)")
    demo.add_argument("--seed", type=int, default=0,
                      help="seed of the split, the noisy labels and the weights (default: 0)")
    demo.add_argument("--backend", choices=BACKENDS, default=None, help=BACKEND_HELP)
    demo.add_argument("--verbose", type=int, default=0, choices=(0, 1, 2),
                      help="Keras fit verbosity (default: 0, a line every few epochs)")

    plot = sub.add_parser(
        "plot", help="write a run's figures as PNG: curves, activation maps, reconstructions")
    plot.add_argument("run_dir", help="a `keras-sanm train` output folder")
    plot.add_argument("--compare", default=None,
                      help="another run on the same data, drawn beside it (e.g. CE next to SANM(CE))")
    plot.add_argument("--data-dir", default=None,
                      help="the run's dataset folder (default: the one recorded in summary.json)")
    plot.add_argument("--output", default=None, help="figure folder (default RUN_DIR/figures)")
    plot.add_argument("--samples", type=_positive_int, default=4,
                      help="training samples per group (correct / wrong label) in the image figures")
    plot.add_argument("--seed", type=int, default=0, help="seed of the sample draw (default: 0)")
    plot.add_argument("--backend", choices=BACKENDS, default=None, help=BACKEND_HELP)

    return parser


def _noisy_labels(args, data, out_dir):
    """The noisy labels and the noise file beside the run's log (a copy of `--noise-file`)."""
    import shutil

    from keras_sanm.data import noise_file_name, noisy_labels_from_file

    if data.noisy_train is not None:
        return data.noisy_train, None
    mode, rate = args.noise
    beside_log = os.path.join(out_dir, noise_file_name(data.name, rate, mode))
    path = args.noise_file or beside_log
    noisy, created = noisy_labels_from_file(
        path, data.y_train, data.num_classes, mode=mode, rate=rate
    )
    print(f"{'wrote' if created else 'reused'} noise file {path}")
    if os.path.abspath(path) != os.path.abspath(beside_log):
        shutil.copyfile(path, beside_log)
    return noisy, path


def _load_dataset(args):
    """The `ImageDataset` of `--dataset`: arrays, or for the real-noise datasets
    images on disk with their own noisy labels (`y_train` unknown: `None`)."""
    import keras_sanm
    from keras_sanm.datasets import ImageDataset, _subset

    try:
        if args.dataset not in REAL_NOISE_DATASETS:
            return keras_sanm.datasets.load(
                args.dataset, args.data_dir, args.train_size, args.test_size, seed=args.seed)
        if args.data_dir is None:
            raise SystemExit(f"--dataset {args.dataset} is read from its published files: "
                             "pass --data-dir FOLDER (nothing is downloaded).")
        real = getattr(keras_sanm.data, f"load_{args.dataset}")(args.data_dir)
    except (FileNotFoundError, ImportError, ValueError) as error:
        raise SystemExit(f"--dataset {args.dataset}: {error}") from None
    train = _subset(len(real.noisy_train), args.train_size, args.seed)
    test = _subset(len(real.y_test), args.test_size, args.seed + 1)
    return ImageDataset(real.name, real.x_train.subset(train), None,
                        real.x_test.subset(test), real.y_test[test], real.num_classes,
                        None, None, real.noisy_train[train])


def _noise_name(args) -> str:
    """`sym:0.5`, or `real` for a dataset's own noisy labels."""
    return "real" if args.noise is None else f"{args.noise[0]}:{args.noise[1]}"


def _parse_epochs(text):
    """`--lr-drop-epochs 50,75` -> `(50, 75)`; `None` stays `None`."""
    if text is None:
        return None
    try:
        epochs = tuple(int(part) for part in str(text).split(","))
    except ValueError:
        raise SystemExit(f"--lr-drop-epochs takes comma-separated epochs; got {text!r}.") from None
    if any(e < 1 for e in epochs):
        raise SystemExit(f"--lr-drop-epochs must be epochs >= 1; got {text!r}.")
    return epochs


def _parse_ablation(args) -> list[str]:
    """`--sanm-without masking,strong_views` -> sorted part names (checked)."""
    if not args.sanm_without:
        return []
    parts = sorted(set(args.sanm_without.split(",")))
    known = ABLATION_PARTS.get(args.method, ())
    if not known or not args.sanm:
        with_parts = ", ".join(f"--method {m}" for m in ABLATION_PARTS)
        raise SystemExit("--sanm-without switches off parts of a SANM method that has them: "
                         f"use it with {with_parts} and without --no-sanm.")
    unknown = [p for p in parts if p not in known]
    if unknown:
        raise SystemExit(f"--sanm-without: unknown parts {unknown}; choose from {known}.")
    return parts


def _resolve_noise(args):
    """`--noise`, else the preset's noise, else sym:0.5."""
    if args.noise is not None:
        return args.noise
    if args.preset:
        from keras_sanm.presets import parse_preset

        try:
            dataset, mode, rate = parse_preset(args.preset)
        except ValueError as error:
            raise SystemExit(f"--preset: {error}") from None
        if dataset != args.dataset:
            raise SystemExit(f"--preset {args.preset} is for {dataset}, not --dataset {args.dataset}.")
        return mode, rate
    return ("sym", 0.5)


def _training_data(args, model, data, noisy):
    from keras_sanm.data import IndexedDataset

    make = methods.get(args.method).training_data
    if make is not None:
        return make(model, data.x_train, noisy, args.batch_size, data.num_classes,
                    args.seed, data.y_train)
    # The method's reference augmentation (Co-teaching's trains without).
    return IndexedDataset(
        data.x_train, noisy, args.batch_size, data.num_classes, augment=model.augment,
        seed=args.seed, clean_labels=data.y_train,
    )


# Settings a resumed run must share with the run it continues (`--epochs` may grow).
RUN_SETTINGS = ("dataset", "train_size", "test_size", "method", "sanm", "sanm_without",
                "masked_targets", "mask_aspect", "protocol", "preset",
                "backbone", "width", "batch_size", "warmup_epochs", "seed", "dtype_policy",
                "lr_drop_epochs", "init", "warmup_augment")


def _masked_targets(args) -> str | None:
    """The masked copies' targets the run trains with (`None`: the run has none)."""
    if not (args.sanm and methods.get(args.method).masked_targets):
        return None
    return args.masked_targets or MASKED_TARGETS[0]


def _resumes_label_targets_by_default(args, checkpoint) -> bool:
    """Whether `checkpoint` is a run that took the masked copies' default when it was the label.

    Such runs recorded no targets (`None`); they continue on the label.
    """
    saved = (checkpoint or {}).get("run_config") or {}
    return ("masked_targets" in saved and saved["masked_targets"] is None
            and _masked_targets(args) is not None and args.masked_targets is None)


def _run_config(args, noisy, label_targets_by_default: bool = False) -> dict:
    import hashlib

    import numpy as np

    config = {name: getattr(args, name) for name in RUN_SETTINGS}
    # The targets used, so that a run started under another default is not
    # continued with other targets (runs checkpointed while the label was the
    # default recorded none, and keep recording none).
    config["masked_targets"] = None if label_targets_by_default else _masked_targets(args)
    config["noise"] = _noise_name(args)
    if config["lr_drop_epochs"] is not None:  # as JSON stores it
        config["lr_drop_epochs"] = list(config["lr_drop_epochs"])
    config["sanm_without"] = config["sanm_without"] or None
    config["noisy_labels_sha256"] = hashlib.sha256(
        np.asarray(noisy, np.int64).tobytes()).hexdigest()[:16]
    return config


def _checkpoint_to_resume(args, out_dir):
    """The run folder's last checkpoint with `--resume`; refuses to overwrite one without."""
    from keras_sanm.training_backup import TrainingBackup

    latest = TrainingBackup.latest(os.path.join(out_dir, "checkpoint"))
    if latest is not None and not args.resume:
        raise SystemExit(
            f"{out_dir} holds a run checkpointed after epoch {latest['epoch']}. Rerun the "
            "same command with --resume to continue it, or pass another --output."
        )
    return latest


def _write_csv_log(path: str, history: dict) -> None:
    """A `CSVLogger`-format log of the epochs in `history`."""
    import csv

    keys = sorted(history)
    epochs = len(history[keys[0]]) if keys else 0
    with open(path, "w", newline="") as f:
        writer = csv.writer(f)
        writer.writerow(["epoch", *keys])
        for epoch in range(epochs):
            writer.writerow([epoch, *(history[k][epoch] for k in keys)])


def train_command(args) -> dict:
    import keras
    import numpy as np

    import keras_sanm
    from keras_sanm.callbacks import LabelFitMonitor, NonFiniteLossError
    from keras_sanm.masking import aspect_range
    from keras_sanm.training_backup import TrainingBackup

    args.lr_drop_epochs = _parse_epochs(args.lr_drop_epochs)
    args.sanm_without = _parse_ablation(args)
    if args.masked_targets is not None and (
            not methods.get(args.method).masked_targets or not args.sanm):
        with_targets = ", ".join(f"--method {m}" for m in METHOD_NAMES
                                 if methods.get(m).masked_targets)
        raise SystemExit("--masked-targets sets the masked copies' targets of a SANM version "
                         f"that trains them on the given labels: use it with {with_targets} "
                         "and without --no-sanm.")
    if args.warmup_augment is not None and (args.method != "dividemix" or not args.sanm):
        raise SystemExit("--warmup-augment sets SANM(DivideMix)'s warm-up: use it with "
                         "--method dividemix and without --no-sanm.")
    if args.warmup_augment is not None and "strong_warmup" in args.sanm_without \
            and args.warmup_augment != "weak":
        raise SystemExit("--sanm-without strong_warmup is the weak warm-up; leave out "
                         f"--warmup-augment {args.warmup_augment}.")
    if args.protocol is not None:
        protocol = protocols.get(args.protocol)
        if args.dataset != protocol.dataset:
            raise SystemExit(f"--protocol {protocol.name} is the protocol of --dataset "
                             f"{protocol.dataset}, not of {args.dataset}.")
        if args.preset is not None:
            raise SystemExit(f"--preset {args.preset} is a CIFAR noise cell's setting; "
                             f"--protocol {protocol.name} sets the method's own for "
                             f"{protocol.dataset}: give one.")
        if args.lr_drop_epochs is not None:
            raise SystemExit(f"--protocol {protocol.name} sets the learning-rate drops "
                             f"{list(protocol.lr_drop_epochs)}; leave out --lr-drop-epochs.")
        args.backbone = args.backbone or protocol.backbone
        args.batch_size = args.batch_size or protocol.batch_size
        args.epochs = args.epochs or protocol.epochs
    if args.mask_aspect is not None:
        if not args.sanm:
            raise SystemExit("--mask-aspect shapes SANM's boxes; it does not apply with --no-sanm.")
        try:
            aspect_range(args.mask_aspect)
        except ValueError as error:
            raise SystemExit(f"--mask-aspect: {error}") from None

    # Argument checks first, before any data is read.
    if args.dataset in OWN_LABEL_DATASETS:
        if args.noise is not None or args.noise_file is not None:
            raise SystemExit(f"--dataset {args.dataset} comes with its own noisy labels; "
                             "--noise and --noise-file do not apply to it.")
        if args.preset is not None:
            raise SystemExit(f"--preset holds reference settings for synthetic noise on "
                             f"CIFAR; --dataset {args.dataset} has its own noisy labels.")
    else:
        args.noise = _resolve_noise(args)
    data = _load_dataset(args)
    noise_tag = _noise_name(args).replace(":", "")
    name = f"{args.dataset}_{args.method}{'_sanm' if args.sanm else ''}_{noise_tag}"
    out_dir = args.output or os.path.join("runs", name)
    checkpoint = _checkpoint_to_resume(args, out_dir)
    os.makedirs(out_dir, exist_ok=True)
    noisy, noise_path = _noisy_labels(args, data, out_dir)
    # Unknown for real noise without true labels: no metric then uses them.
    wrong = None if data.y_train is None else float(np.mean(noisy != data.y_train))
    print(f"{data.name}: {len(noisy)} train / {len(data.y_test)} test, "
          + ("real label noise (which labels are wrong is unknown)" if wrong is None
             else f"{wrong:.1%} wrong labels")
          + f", backend {keras.backend.backend()}")

    keras.utils.set_random_seed(args.seed)
    spec = methods.get(args.method)
    args.backbone = args.backbone or spec.backbone
    args.batch_size = args.batch_size or spec.batch_size
    config = {}
    if spec.batch_size_option:
        config["batch_size"] = args.batch_size
    # The reference sets these to the (nominal) noise rate; a preset does the same.
    # With a dataset's own labels: the measured rate where true labels are known
    # (CIFAR-N), else left to the model's estimate (NoiseRateEstimate).
    rate = args.noise[1] if args.noise is not None else wrong
    if spec.noise_rate_option and not args.preset and rate is not None:
        config[spec.noise_rate_option] = rate
    if args.warmup_epochs is not None:
        config["warmup_epochs"] = args.warmup_epochs
    for part in args.sanm_without:
        config[part] = False
    if data.mean is not None:  # the dataset's published constants
        config["preprocessing"] = keras_sanm.ImagePreprocessing(mean=data.mean, std=data.std)
    label_targets_by_default = _resumes_label_targets_by_default(args, checkpoint)
    if label_targets_by_default:
        print(f"The checkpoint's run trained its masked copies on the label, the default "
              f"when it started; it continues so (--masked-targets "
              f"{MASKED_TARGETS_BEFORE_THE_OPTION}).")
        args.masked_targets = MASKED_TARGETS_BEFORE_THE_OPTION
    if args.masked_targets is not None:
        config["masked_targets"] = args.masked_targets
    if args.mask_aspect is not None:
        config["mask_aspect"] = args.mask_aspect
    if args.warmup_augment is not None:
        config["warmup_augment"] = args.warmup_augment
    previous_policy = keras.config.dtype_policy()
    if args.dtype_policy:
        keras.config.set_dtype_policy(args.dtype_policy)
    try:  # Layers take the policy when they are created.
        base = keras_sanm.backbones.get(args.backbone, data.num_classes, data.x_train.shape[1:],
                                        width=args.width)
        if args.init is not None:
            base.load_weights(pretrain_cli.init_weights(
                args.init, args.backbone, args.width, data.num_classes, data.x_train.shape[1:]))
            print(f"base network initialised from {args.init}")
        # A pretrained start is every network's start (as C2D loads one checkpoint twice).
        model = keras_sanm.wrap(
            base, method=args.method, sanm=args.sanm, seed=args.seed, preset=args.preset,
            protocol=args.protocol, second_network="copy" if args.init else None, **config
        )
    finally:
        keras.config.set_dtype_policy(previous_policy)
    model.compile(lr_drop_epochs=args.lr_drop_epochs, protocol=args.protocol)
    args.epochs = args.epochs or model.reference_epochs
    train = _training_data(args, model, data, noisy)
    log_path = os.path.join(out_dir, "log.csv")
    if checkpoint is not None:
        # The log gets the checkpoint's epochs only (a killed epoch's row is dropped).
        _write_csv_log(log_path, checkpoint["history"])
        print(f"resuming from the checkpoint after epoch {checkpoint['epoch']} "
              f"({checkpoint['folder']})")
    backup = TrainingBackup(os.path.join(out_dir, "checkpoint"), run_config=_run_config(
        args, noisy, label_targets_by_default))
    # Fit of correct and wrong training labels (logged before the backup and CSV see the logs).
    label_fit = (None if data.y_train is None else
                 LabelFitMonitor(data.x_train, noisy, data.y_train, every=args.track_fit_every))
    try:
        model.fit(
            train, epochs=args.epochs, validation_data=(data.x_test, data.y_test),
            callbacks=[c for c in (label_fit, backup, keras.callbacks.CSVLogger(
                log_path, append=checkpoint is not None)) if c is not None],
            verbose=args.verbose,
        )
    except NonFiniteLossError as error:
        last = TrainingBackup.latest(os.path.join(out_dir, "checkpoint"))
        where = (f"the checkpoint after epoch {last['epoch']} is kept in {last['folder']}"
                 if last else "no epoch had finished, so there is no checkpoint")
        raise SystemExit(f"{error}\n{where}; rerun with --resume to continue from it.") from None
    # The whole run's time in fit, all resumes together (None: resumed from a
    # checkpoint that did not record it).
    seconds = backup.training_seconds
    history = backup.history
    model.save(os.path.join(out_dir, "model.keras"))
    test_acc = [float(v) for v in history["val_accuracy"]]
    summary = {
        "dataset": data.name, "method": args.method, "sanm": args.sanm,
        "noise": _noise_name(args), "actual_noise_rate": wrong,
        "backbone": args.backbone, "backend": keras.backend.backend(),
        "dtype_policy": args.dtype_policy or previous_policy.name,
        "output_dtype": str(np.asarray(model.predict(data.x_test[:1], verbose=0)).dtype),
        "epochs": args.epochs, "batch_size": args.batch_size, "seed": args.seed,
        "train_size": len(noisy), "test_size": len(data.y_test),
        "width": args.width, "lr_drop_epochs": args.lr_drop_epochs,
        "sanm_without": args.sanm_without,
        "masked_targets": getattr(model, "masked_targets", None),
        "mask_aspect": args.mask_aspect, "protocol": args.protocol, "init": args.init,
        "warmup_augment": getattr(model, "warmup_augment", None) if args.sanm else None,
        "learning_rates": sorted({float(v) for v in history.get("learning_rate", [])}, reverse=True),
        **{name: float(history[name][-1]) for name in LabelFitMonitor.NAMES if name in history},
        "best_test_accuracy": max(test_acc), "last_test_accuracy": test_acc[-1],
        "mean_last10_test_accuracy": float(np.mean(test_acc[-10:])),
        "wall_seconds": seconds,
        "preset": args.preset,
        "train_samples_per_second": (None if seconds is None else
                                     len(test_acc) * len(noisy) / max(seconds, 1e-9)),
        "noise_file": noise_path,
        "resumed_from_epoch": None if checkpoint is None else checkpoint["epoch"],
        "data_dir": None if args.data_dir is None else os.path.abspath(args.data_dir),
    }
    with open(os.path.join(out_dir, "history.json"), "w") as f:
        json.dump({k: [float(x) for x in v] for k, v in history.items()}, f, indent=1)
    with open(os.path.join(out_dir, "summary.json"), "w") as f:
        json.dump(summary, f, indent=1)
    print(f"best test accuracy {summary['best_test_accuracy']:.4f}, "
          f"last {summary['last_test_accuracy']:.4f}, "
          + ("time not recorded by the checkpoint it resumed from"
             if seconds is None else f"{seconds:.0f} s in fit") + f"; logs in {out_dir}")
    return summary


def _digits_problem(noise_rate: float, seed: int):
    import numpy as np
    from sklearn.datasets import load_digits
    from sklearn.model_selection import train_test_split

    from keras_sanm.data import inject_noise

    digits = load_digits()
    # 16x16x1 floats in [0, 1]; the model standardises them itself.
    images = (np.kron(digits.images, np.ones((2, 2)))[..., None] / 16.0).astype("float32")
    x_tr, x_te, y_tr, y_te = train_test_split(
        images, digits.target, test_size=497, random_state=seed, stratify=digits.target
    )
    noisy = inject_noise(y_tr, 10, "sym", noise_rate, seed=seed)
    return x_tr, noisy, y_tr, x_te, y_te, 10


def _cifar_problem(data_dir: str, noise_rate: float, seed: int):
    from keras_sanm import datasets
    from keras_sanm.data import inject_noise

    data = datasets.load("cifar10", data_dir, train_size=5000, test_size=1000, seed=seed)
    noisy = inject_noise(data.y_train, 10, "sym", noise_rate, seed=seed)
    return data.x_train, noisy, data.y_train, data.x_test, data.y_test, 10  # uint8


def demo_command(args) -> dict:
    import keras
    import numpy as np

    import keras_sanm

    if args.data_dir:
        problem, epochs = _cifar_problem(args.data_dir, args.noise_rate, args.seed), 15
    else:
        problem, epochs = _digits_problem(args.noise_rate, args.seed), 40
    epochs = args.epochs or epochs
    x_tr, noisy, clean, x_te, y_te, classes = problem
    print(f"{len(x_tr)} training images {x_tr.shape[1:]}, {np.mean(noisy != clean):.1%} "
          f"wrong labels ({args.noise_rate:.0%} symmetric noise), {len(x_te)} clean test "
          f"images, backend {keras.backend.backend()}, {epochs} epochs")
    results = {}
    every = max(1, epochs // 8)
    for label, sanm in (("CE", False), ("SANM(CE)", True)):
        keras.utils.set_random_seed(args.seed)
        base = keras_sanm.backbones.SmallCNN(classes, x_tr.shape[1:])
        model = keras_sanm.wrap(base, sanm=sanm, seed=args.seed)
        model.compile(optimizer=keras.optimizers.SGD(0.05, momentum=0.9), weight_decay=5e-4)
        start = time.time()
        progress = []
        if args.verbose == 0:  # a line every few epochs instead of Keras' progress bar
            progress.append(keras.callbacks.LambdaCallback(on_epoch_end=lambda epoch, logs, label=label: (
                print(f"  {label} epoch {epoch + 1}/{epochs}: test accuracy "
                      f"{logs['val_accuracy']:.3f} ({time.time() - start:.0f} s)", flush=True)
                if (epoch + 1) % every == 0 or epoch + 1 == epochs else None)))
        history = model.fit(x_tr, noisy, batch_size=64, epochs=epochs, verbose=args.verbose,
                            validation_data=(x_te, y_te), callbacks=progress)
        acc = history.history["val_accuracy"]
        results[label] = {"best": max(acc), "last": acc[-1], "seconds": time.time() - start}
        print(f"{label:9s} test accuracy: last {acc[-1]:.3f}, best {max(acc):.3f} "
              f"({results[label]['seconds']:.0f} s)", flush=True)
    print(demo_verdict(results))
    return results


def demo_verdict(results: dict) -> str:
    """What the demo's two runs say, and what `best` and `last` mean."""
    gains = {key: 100 * (results["SANM(CE)"][key] - results["CE"][key]) for key in ("last", "best")}
    winner = ("SANM(CE)" if gains["last"] > 0 else "CE" if gains["last"] < 0 else "neither model")
    return (f"last = test accuracy after the final epoch (what you keep without clean data to "
            f"pick an epoch); best = the highest over the epochs.\n"
            f"SANM(CE) - CE: {gains['last']:+.1f} points last, {gains['best']:+.1f} best: "
            f"{winner} ended higher in this one run (one seed; docs/results.md has grids "
            f"over seeds).")


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


def _require_matplotlib() -> None:
    import importlib.util

    if importlib.util.find_spec("matplotlib") is None:
        raise SystemExit("keras-sanm plot draws with matplotlib: pip install 'keras-sanm[viz]' "
                         "(or pip install matplotlib).")


def main(argv=None) -> int:
    args = build_parser().parse_args(argv)
    if args.command == "plot":
        _require_matplotlib()
    if args.backend:
        if "keras" in sys.modules and os.environ.get("KERAS_BACKEND") != args.backend:
            raise SystemExit("--backend must be chosen before Keras is imported.")
        os.environ["KERAS_BACKEND"] = args.backend
    elif "keras" not in sys.modules:
        backend = _default_backend()
        if backend:
            os.environ["KERAS_BACKEND"] = backend
    commands = {"train": train_command, "pretrain": pretrain_cli.pretrain_command,
                "demo": demo_command, "plot": plot_command}
    if args.command in ("train", "pretrain") and args.verbose == 0:
        # Silent fits; what they decide (preprocessing, estimated rates) is
        # still part of the run's report.
        from keras_sanm.messages import logged_to_stdout

        with logged_to_stdout():
            commands[args.command](args)
    else:
        commands[args.command](args)
    return 0


if __name__ == "__main__":
    sys.exit(main())
