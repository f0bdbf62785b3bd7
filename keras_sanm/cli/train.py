"""`keras-sanm train`: one training run on a dataset with (synthetic or real) noisy labels."""

from __future__ import annotations

import json
import os

from keras_sanm import methods, protocols
from keras_sanm.cli import pretrain as pretrain_cli
from keras_sanm.cli.arguments import (
    ABLATION_PARTS,
    METHOD_NAMES,
    OWN_LABEL_DATASETS,
    REAL_NOISE_DATASETS,
)
from keras_sanm.methods.spec import MASKED_TARGETS, MASKED_TARGETS_BEFORE_THE_OPTION


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
    from keras_sanm.training.backup import TrainingBackup

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
    from keras_sanm.sanm.masking import aspect_range
    from keras_sanm.training.backup import TrainingBackup
    from keras_sanm.training.callbacks import LabelFitMonitor, NonFiniteLossError

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
