"""Self-supervised pretraining of a base model on its images alone (SimCLR), and its read-outs.

`keras_sanm.pretrain(base_model, images)` trains the base model's features
in place; `knn_accuracy`, `linear_probe_accuracy` and
`RepresentationMonitor` measure them on labelled images.
"""

from keras_sanm.pretraining.api import METHODS, build_pretrainer, pretrain
from keras_sanm.pretraining.evaluation import (
    RepresentationMonitor,
    knn_accuracy,
    linear_probe_accuracy,
    representations,
)
from keras_sanm.pretraining.inputs import UnlabeledBatches
from keras_sanm.pretraining.simclr import SimCLRPretrainer, nt_xent, representation_model
from keras_sanm.pretraining.views import simclr_view

__all__ = [
    "METHODS",
    "RepresentationMonitor",
    "SimCLRPretrainer",
    "UnlabeledBatches",
    "build_pretrainer",
    "knn_accuracy",
    "linear_probe_accuracy",
    "nt_xent",
    "pretrain",
    "representation_model",
    "representations",
    "simclr_view",
]
