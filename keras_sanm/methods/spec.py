"""`MethodSpec`: what a training method declares besides its algorithm.

Each method is a folder `keras_sanm/methods/<name>/`: `trainers.py` holds
the algorithm (the plain and the SANM trainer, in `keras.ops`), and the
folder's `__init__.py` declares a `SPEC` with the method's reference
defaults. The declaration imports nothing from Keras, so the command line
and the benchmark harness can read it before a backend is chosen (or on a
machine without the default one), and `wrap`, the command line, presets
and benchmarks read every method-specific default from it instead of
testing the method's name.
"""

from __future__ import annotations

import dataclasses
import importlib
from collections.abc import Callable

# What the masked copies of a SANM version whose method trains on the given
# labels are pulled towards (`masked_targets`); the first is the default.
MASKED_TARGETS = ("refined", "label")
# Configs and result rows from before the option existed trained on the label.
MASKED_TARGETS_BEFORE_THE_OPTION = "label"


@dataclasses.dataclass(frozen=True)
class MethodSpec:
    """A training method's name, trainers and reference defaults.

    Args:
        name: what `wrap(method=...)` and `--method` take.
        label: the name in tables and messages (e.g. `"DivideMix"`).
        plain: class name of the trainer without SANM (in `trainers.py`).
        with_sanm: class name of the SANM trainer.
        backbone: the reference backbone on CIFAR (a `keras_sanm.backbones`
            name), the command line's default.
        batch_size: the reference batch size, the command line's default.
        reference_epochs: the reference run length in epochs on CIFAR: the
            command line's default `--epochs`, and the run the reference
            learning-rate schedule belongs to (its drops scale with the
            length of each `fit`). A method with an `epochs` option (DivideMix,
            ELR+, SSR) takes it as that option's default; a preset may set
            its own (SANM(DivideMix) 361).
        batch_size_option: the trainer takes `batch_size` itself (the
            alternating methods build their own batches).
        augment: the reference augmentation of training arrays (`"weak"` or
            `None`).
        noise_rate_option: the trainer option the reference sets to the noise
            rate (`"forget_rate"`, `"noise_rate"`), set by the command line
            when the rate is known.
        preset: `preset(dataset, mode, rate, sanm) -> options` for a named
            reference cell (`keras_sanm.presets`), or `None`.
        preset_by_noise: the reference settings differ per noise cell, so a
            CIFAR run should name its preset (DivideMix's `lambda_u`, ...).
        sanm_parts: parts of the SANM version that can be switched off one
            at a time (constructor flags; `--sanm-without`).
        masked_targets: the SANM version takes `masked_targets` (its masked
            copies start from the given label: refined by default, or the
            label itself).
        needs_features: the plain method reads the network's feature map
            too (SSR's pooled features), so `wrap` exposes it without SANM.
        protocol_options: `protocol_options(dataset) -> options`: the method's
            own reference settings on a real-world dataset (a
            `keras_sanm.protocols` dataset; `{}` where it has none), or `None`.
        small_data_options: `small_data_options(samples, batch_size) ->
            options` that let a run on a few dozen images go through every
            phase of the method within two epochs (DivideMix: a one-epoch
            warm-up; SSR: no more neighbours than the data has), or `None`
            where the defaults do. For tests and smoke runs; with
            `noise_rate_option` set they still estimate the rate unless it
            is given.
        training_data: `training_data(model, images, labels, batch_size,
            num_classes, seed, clean_labels)` -> the data object the command
            line trains on (with true labels for reporting), or `None` for
            an `IndexedDataset` with `augment`.
    """

    name: str
    label: str
    plain: str
    with_sanm: str
    backbone: str = "preact_resnet18"
    batch_size: int = 64
    reference_epochs: int = 300
    batch_size_option: bool = False
    augment: str | None = "weak"
    noise_rate_option: str | None = None
    preset: Callable[..., dict] | None = None
    preset_by_noise: bool = False
    sanm_parts: tuple[str, ...] = ()
    masked_targets: bool = False
    needs_features: bool = False
    training_data: Callable | None = None
    small_data_options: Callable[[int, int], dict] | None = None
    protocol_options: Callable[[str], dict] | None = None

    @property
    def module(self) -> str:
        return f"keras_sanm.methods.{self.name}.trainers"

    def options_for_small_data(self, samples: int, batch_size: int) -> dict:
        """`small_data_options(samples, batch_size)`, `{}` where the method has none."""
        if self.small_data_options is None:
            return {}
        return self.small_data_options(samples, batch_size)

    def trainers(self) -> tuple[type, type]:
        """`(plain, with_sanm)` trainer classes (imports Keras)."""
        module = importlib.import_module(self.module)
        return getattr(module, self.plain), getattr(module, self.with_sanm)


def lazy_trainers_module(name: str):
    """A module `__getattr__` that reads unknown names from the method's `trainers.py`."""

    def __getattr__(attribute):
        if attribute.startswith("__"):
            raise AttributeError(attribute)
        return getattr(importlib.import_module(f"keras_sanm.methods.{name}.trainers"), attribute)

    return __getattr__
