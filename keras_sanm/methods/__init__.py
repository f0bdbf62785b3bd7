"""Training methods: name -> (plain trainer, SANM trainer)."""

from keras_sanm.methods.ce import CrossEntropyTrainer, SANMCrossEntropyTrainer
from keras_sanm.methods.dividemix import DivideMixTrainer, SANMDivideMixTrainer

METHODS = {
    "ce": (CrossEntropyTrainer, SANMCrossEntropyTrainer),
    "dividemix": (DivideMixTrainer, SANMDivideMixTrainer),
}
