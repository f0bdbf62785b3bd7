"""The `keras-sanm` argument parser: every subcommand's options, and the names they take."""

from __future__ import annotations

import argparse
import os

from keras_sanm import methods, protocols
from keras_sanm.cli import pretrain as pretrain_cli
from keras_sanm.methods.dividemix import WARMUP_AUGMENTS

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

    issues = sub.add_parser(
        "issues", help="a run's likely wrong training labels: a CSV table (worst first) and "
                       "a figure of the worst")
    issues.add_argument("run_dir", help="a `keras-sanm train` output folder")
    issues.add_argument("--data-dir", default=None,
                        help="the run's dataset folder (default: the one recorded in "
                             "summary.json)")
    issues.add_argument("--output", default=None,
                        help="folder of label_issues.csv and label_issues.png (default RUN_DIR)")
    issues.add_argument("--threshold", type=_rate, default=0.5,
                        help="a label is an issue when its label quality is at most this "
                             "(default: 0.5)")
    issues.add_argument("--show", type=_non_negative_int, default=24,
                        help="issues drawn in label_issues.png, worst first (0: no figure; "
                             "default: 24)")
    issues.add_argument("--backend", choices=BACKENDS, default=None, help=BACKEND_HELP)

    return parser
