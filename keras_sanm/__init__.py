"""keras-sanm: noisy-label training for Keras 3 on JAX, PyTorch and TensorFlow.

Public API (loaded on first use, so `KERAS_BACKEND` can still be chosen after
`import keras_sanm`):

* `wrap(base_model, method="ce" | "coteaching" | "cdr" | "dividemix" |
  "elr_plus" | "ssr", sanm=True, ...)`: the training wrapper;
  `model.label_quality(x, y)` gives each sample's clean
  probability and `find_label_issues(model, x, y)` the likely mislabeled ones
  (`return_table=True`: a DataFrame, worst first).
* `cross_val_predict_proba(make_model, x, y, folds=5)`: out-of-sample class
  probabilities of every sample (K-fold, resumable), for
  `cleanlab.filter.find_label_issues`.
* `ImagePreprocessing`: how the model scales and standardises raw images
  (inferred at the first `fit`, saved with the model, applied everywhere).
* `load_model(path)`: a wrapped model saved with `model.save("m.keras")`,
  on any backend (after `import keras_sanm`, `keras.saving.load_model`
  loads it too: the trainers register as soon as Keras is imported).
* `pretrain(base_model, images, epochs)`: self-supervised SimCLR training
  of a base model's features on its images alone, before `wrap`
  (`pretraining`: kNN and linear-probe read-outs of the features).
* `TrainingBackup(directory)`: a callback that checkpoints the whole training
  state after every epoch and resumes from it when `fit` is called again.
* `NoisyMask`, `ReconstructionDecoder`, `modulate_labels`,
  `reconstruction_loss`: SANM's components as layers and functions.
* `backbones` (`PreActResNet18`, `ResNet18`, `VGG19`, `ResNet50`, `CNN9`,
  `with_classifier`, `load_torch_resnet18_weights`), `data` (`inject_noise`,
  `IndexedDataset`, ...), `datasets` (`load`), `label_quality`.
* `sanm` (the mask, label modulation, decoder: `sanm.masking`, ...),
  `training` (the trainer base, its input, saving, callbacks) and `methods`
  (one folder per method, `methods.names()`).
* `presets` (a method's reference hyper-parameters per CIFAR noise cell) and
  `protocols` (a real-world dataset's backbone, batch, epochs and optimizer:
  `compile(protocol="clothing1m" | "animal10n")`).
* `distribution`: `data_parallel()` trains on several devices through the
  backend's own engine (JAX DataParallel, TF MirroredStrategy, torchrun).
* `viz`: activation maps with SANM's boxes, reconstructions and training
  curves as matplotlib figures; `viz.plot_run(run_dir)` writes a run's PNGs.
"""

import importlib
import importlib.abc
import importlib.util
import sys
import threading
import warnings

from keras_sanm.version import __version__

_ATTRIBUTES = {
    "wrap": "keras_sanm.wrap",
    "load_model": "keras_sanm.saving",
    "ImagePreprocessing": "keras_sanm.data.preprocessing",
    "TrainingBackup": "keras_sanm.training.backup",
    "NoisyMask": "keras_sanm.sanm.noisy_mask",
    "ReconstructionDecoder": "keras_sanm.sanm.decoder",
    "reconstruction_loss": "keras_sanm.sanm.decoder",
    "modulate_labels": "keras_sanm.sanm.masking",
    "find_label_issues": "keras_sanm.label_issues",
    "estimate_noise_rate": "keras_sanm.label_issues",
    "cross_val_predict_proba": "keras_sanm.cross_validation",
    "pretrain": "keras_sanm.pretraining",
}
_SUBMODULES = (
    "backbones", "data", "datasets", "sanm", "training", "methods", "label_quality",
    "label_issues", "cross_validation", "presets", "protocols", "viz", "distribution", "pretraining",
)
# Public submodules that moved (`keras_sanm.masking` is `keras_sanm.sanm.masking`):
# the old names still work, with a FutureWarning, for one release.
_MOVED_SUBMODULES = ("masking", "callbacks", "preprocessing")

__all__ = ["__version__", *_ATTRIBUTES, *_SUBMODULES]


def __getattr__(name):
    if name in _ATTRIBUTES:
        value = getattr(importlib.import_module(_ATTRIBUTES[name]), name)
    elif name in _SUBMODULES:
        value = importlib.import_module(f"keras_sanm.{name}")
    elif name in _MOVED_SUBMODULES:
        from keras_sanm._moved import MOVED_MODULES, warn_moved

        warn_moved(f"keras_sanm.{name}")
        return importlib.import_module(MOVED_MODULES[f"keras_sanm.{name}"])  # warns each time
    else:
        raise AttributeError(f"module 'keras_sanm' has no attribute {name!r}")
    globals()[name] = value
    return value


def __dir__():
    return sorted(__all__)


def _register_trainers() -> None:
    try:
        importlib.import_module("keras_sanm.methods").register_all()
    except Exception as error:  # noqa: BLE001 - Keras itself must still import
        warnings.warn(f"keras_sanm could not register its trainers for keras.saving "
                      f"({error!r}); use keras_sanm.load_model.", stacklevel=2)


class _RegisterAfterKeras(importlib.abc.MetaPathFinder):
    """Registers the trainers with `keras.saving` once Keras is imported.

    The package itself imports Keras only when first used, so that the
    backend can still be chosen after `import keras_sanm`; registering on
    Keras' import lets `keras.saving.load_model` load a saved wrapper
    without the package importing Keras early.

    Registering imports the trainers, which import most of the package, so it
    must not run while a `keras_sanm` submodule is still executing (e.g.
    `import keras_sanm.training.trainer`, whose own `import keras` would otherwise ask
    for `keras_sanm.training.trainer` half-built). The finder therefore also watches
    the package's submodules: Keras' import inside one only marks the
    registration as due, and it runs when the outermost submodule import in
    progress ends. The finder leaves `sys.meta_path` once it has registered.
    """

    # Marks the package's finder (also one left by an earlier copy of this module).
    _keras_sanm_hook = True

    def __init__(self) -> None:
        self._local = threading.local()  # .depth: this thread's nested submodule imports
        self._lock = threading.RLock()
        self._due = False  # Keras is imported, the trainers not yet registered

    def find_spec(self, name, path=None, target=None):
        if name != "keras" and not name.startswith("keras_sanm."):
            return None
        spec = self._others_spec(name, path, target)
        if spec is None or spec.loader is None or not hasattr(spec.loader, "exec_module"):
            return spec
        load = spec.loader.exec_module
        watch = self._after_keras if name == "keras" else self._around_submodule

        def exec_module(module):
            watch(load, module)

        spec.loader.exec_module = exec_module
        return spec

    def _others_spec(self, name, path, target):
        """The spec the finders after this one give (this one only wraps loaders)."""
        for finder in list(sys.meta_path):
            find = getattr(finder, "find_spec", None)
            if getattr(finder, "_keras_sanm_hook", False) or find is None:
                continue
            spec = find(name, path, target)
            if spec is not None:
                return spec
        return None

    def _depth(self) -> int:
        return getattr(self._local, "depth", 0)

    def _after_keras(self, load, module) -> None:
        load(module)
        with self._lock:
            self._due = True
        if self._depth() == 0:
            self._register()

    def _around_submodule(self, load, module) -> None:
        self._local.depth = self._depth() + 1
        try:
            load(module)
        finally:
            # (Also after a failed import: the registration must not wait for another.)
            self._local.depth -= 1
            if self._local.depth == 0 and self._due:
                self._register()

    def _register(self) -> None:
        with self._lock:
            if not self._due:
                return
            self._due = False
            if self in sys.meta_path:
                sys.meta_path.remove(self)
        _register_trainers()


if "keras" in sys.modules:
    _register_trainers()
elif not any(getattr(finder, "_keras_sanm_hook", False) for finder in sys.meta_path):
    sys.meta_path.insert(0, _RegisterAfterKeras())
