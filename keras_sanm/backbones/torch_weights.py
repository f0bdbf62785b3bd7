"""PyTorch state dicts of the SANM code's ResNet-18, loaded into `backbones.ResNet18`.

The official SANM(DivideMix) CIFAR code starts both networks from a
self-supervised checkpoint of a post-activation ResNet-18 (a file holding
`{"model": state_dict}`, keys such as `module.encoder.layer1.0.conv1.weight`).
This module maps such names onto the layers of `keras_sanm.backbones.ResNet18`
and converts the tensors (PyTorch convolutions are `(out, in, kh, kw)`, Keras'
`(kh, kw, in, out)`; linear weights are transposed). Written here because
neither Keras nor keras-hub reads PyTorch checkpoints of this network.

It imports `torch` (only to read a checkpoint file) whatever the Keras
backend: the file format is PyTorch's, not a backend's computation, so this
does not belong in `keras_sanm/backend/`. A state dict already in memory
(tensors or NumPy arrays) needs no torch.
"""

from __future__ import annotations

import os
import re
from collections.abc import Mapping
from typing import Any

import keras
import numpy as np

# PyTorch batch-norm tensors -> the variables of a Keras BatchNormalization.
_BN_TENSORS = ("weight", "bias", "running_mean", "running_var")
# Tensors PyTorch keeps that have no Keras counterpart.
_SKIPPED_SUFFIXES = ("num_batches_tracked",)


def _keras_layer_of(key: str) -> tuple[str, str] | None:
    """`(keras layer name, tensor name)` for a ResNet-18 state-dict key, or `None`."""
    tensor = key.rsplit(".", 1)[-1]
    module = key[: -len(tensor) - 1]
    if module in ("conv1", "bn1"):
        return ("stem_conv" if module == "conv1" else "stem_bn"), tensor
    if module == "fc":
        return "logits", tensor
    match = re.fullmatch(r"layer([1-4])\.([01])\.(conv1|bn1|conv2|bn2|shortcut\.0|shortcut\.1)",
                         module)
    if match is None:
        return None
    stage, block, part = match.groups()
    part = {"shortcut.0": "shortcut", "shortcut.1": "shortcut_bn"}.get(part, part)
    return f"stage{stage}_block{int(block) + 1}_{part}", tensor


def _read(state_dict) -> dict[str, np.ndarray]:
    """A state dict (or a checkpoint file or `{"model": ...}`) as NumPy arrays."""
    if isinstance(state_dict, (str, os.PathLike)):
        try:
            import torch
        except ImportError as error:
            raise ImportError("Reading a PyTorch checkpoint file needs torch: pip install "
                              "torch (or pass the state dict as NumPy arrays).") from error
        state_dict = torch.load(os.fspath(state_dict), map_location="cpu", weights_only=True)
    if not isinstance(state_dict, Mapping):
        raise ValueError(f"Expected a state dict (a mapping of names to tensors); got "
                         f"{type(state_dict).__name__}.")
    if "model" in state_dict and isinstance(state_dict["model"], Mapping):
        state_dict = state_dict["model"]  # the official checkpoints' layout
    arrays = {}
    for key, value in state_dict.items():
        if hasattr(value, "detach"):
            value = value.detach().cpu().numpy()
        name = key.removeprefix("module.")  # saved from DataParallel
        name = name.removeprefix("encoder.")  # SupCon / SupCE wrappers: encoder + fc / head
        arrays[name] = np.asarray(value)
    return arrays


def load_torch_resnet18_weights(model, state_dict: Any) -> dict[str, list[str]]:
    """Loads a PyTorch state dict of the SANM code's ResNet-18 into `ResNet18`.

    Every convolution and batch normalisation of the network must be in the
    state dict, with the shapes of `model` (same `width`); the classifier
    (`fc`) is loaded when present (a self-supervised checkpoint has none, and
    the model keeps its own). Keys of other heads (a projection `head`, a
    decoder) are reported as ignored, not loaded.

    Args:
        model: a `keras_sanm.backbones.ResNet18`.
        state_dict: a mapping of names to tensors or arrays, a
            `{"model": state_dict}` checkpoint, or the path of a file saved
            with `torch.save` (read with `weights_only=True`). Prefixes
            `module.` and `encoder.` are removed.

    Returns:
        A dict: `loaded` (Keras layer names set), `kept` (layers of `model`
        left as they were: the classifier when the state dict has none) and
        `ignored` (state-dict keys with no layer in `model`).

    Example:
    >>> model = keras_sanm.backbones.ResNet18(10)
    >>> report = keras_sanm.backbones.load_torch_resnet18_weights(
    ...     model, "pretrained/ckpt_cifar10_resnet18.pth")
    >>> report["kept"]
    ['logits']
    """
    arrays = _read(state_dict)
    by_layer: dict[str, dict[str, np.ndarray]] = {}
    ignored = []
    for key, value in arrays.items():
        if key.endswith(_SKIPPED_SUFFIXES):
            continue
        target = _keras_layer_of(key)
        if target is None:
            ignored.append(key)
            continue
        by_layer.setdefault(target[0], {})[target[1]] = value
    weighted = [layer.name for layer in model.layers if layer.weights]
    unknown = sorted(set(by_layer) - set(weighted))
    if unknown:
        raise ValueError(f"The state dict has tensors for {unknown}, which this model lacks: "
                         "is it a ResNet18 of the same depth?")
    missing = [name for name in weighted if name not in by_layer and name != "logits"]
    if missing:
        raise ValueError(f"The state dict has no tensors for {len(missing)} layers of the "
                         f"model, e.g. {missing[:3]}: it is not a ResNet-18 of the SANM code's "
                         "layout (conv1, bn1, layer1-4 with shortcut, fc).")
    for name, tensors in by_layer.items():
        layer = model.get_layer(name)
        if isinstance(layer, keras.layers.BatchNormalization):
            values = [tensors.get(t) for t in _BN_TENSORS]
            if any(v is None for v in values):
                raise ValueError(f"{name}: the state dict lacks some of {_BN_TENSORS}.")
        elif "weight" not in tensors:
            raise ValueError(f"{name}: the state dict has no weight.")
        elif tensors["weight"].ndim == 4:  # (out, in, kh, kw) -> (kh, kw, in, out)
            values = [tensors["weight"].transpose(2, 3, 1, 0)]
        else:  # linear: (out, in) -> (in, out), then the bias
            values = [tensors["weight"].T, tensors.get("bias")]
            if values[1] is None:
                raise ValueError(f"{name}: the state dict has no bias.")
        expected = [tuple(w.shape) for w in layer.weights]
        given = [tuple(v.shape) for v in values]
        if expected != given:
            raise ValueError(f"{name}: the state dict's shapes {given} differ from the "
                             f"model's {expected} (another width or class count?).")
        layer.set_weights([v.astype(layer.weights[0].dtype) for v in values])
    return {"loaded": sorted(by_layer), "kept": [n for n in weighted if n not in by_layer],
            "ignored": sorted(ignored)}
