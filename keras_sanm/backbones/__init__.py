"""Backbones as Functional models with a `feature_map` layer.

The paper's CIFAR networks (`PreActResNet18`, the SANM code's `ResNet18`),
the real-world protocols' `VGG19` (Animal-10N) and `ResNet50` (Clothing1M),
Co-teaching's `CNN9` and a `SmallCNN`; `get` builds one by name. Any other
Functional or Sequential Keras model (e.g. from `keras.applications`) works
as the base of `wrap` too.
"""

from __future__ import annotations

from keras_sanm.backbones.applications import VGG19, ResNet50
from keras_sanm.backbones.classifier import with_classifier
from keras_sanm.backbones.layers import FEATURE_LAYER
from keras_sanm.backbones.preact_resnet import PreActResNet18
from keras_sanm.backbones.resnet import ResNet18
from keras_sanm.backbones.small_cnns import CNN9, SmallCNN
from keras_sanm.backbones.torch_weights import load_torch_resnet18_weights

__all__ = ["FEATURE_LAYER", "PreActResNet18", "ResNet18", "VGG19", "ResNet50", "CNN9", "SmallCNN",
           "load_torch_resnet18_weights", "with_classifier", "BACKBONES", "WIDTH_BACKBONES",
           "get"]

BACKBONES = {"preact_resnet18": PreActResNet18, "resnet18": ResNet18, "vgg19": VGG19,
             "resnet50": ResNet50, "cnn9": CNN9, "small_cnn": SmallCNN}
# Backbones with a `width` argument (base channels).
WIDTH_BACKBONES = ("preact_resnet18", "resnet18", "vgg19")


def get(name: str, num_classes: int, input_shape, width: int | None = None):
    """A backbone by name (`preact_resnet18`, `resnet18`, `vgg19`, `resnet50`, `cnn9`,
    `small_cnn`).

    Args:
        name: one of `BACKBONES`.
        num_classes: output size.
        input_shape: `(H, W, C)`.
        width: base channel count (`WIDTH_BACKBONES` only; `None`: the default).

    Returns:
        A Functional `keras.Model` with a `feature_map` layer.
    """
    if name not in BACKBONES:
        raise ValueError(f"Unknown backbone {name!r}; choose from {sorted(BACKBONES)}.")
    options = {}
    if width is not None:
        if name not in WIDTH_BACKBONES:
            raise ValueError(f"width applies to {', '.join(WIDTH_BACKBONES)} only, "
                             f"not {name!r}.")
        options["width"] = width
    return BACKBONES[name](num_classes=num_classes, input_shape=input_shape, **options)
