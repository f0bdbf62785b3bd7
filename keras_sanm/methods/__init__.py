"""Training methods: name -> (plain trainer, SANM trainer)."""

from keras_sanm.methods.ce import CrossEntropyTrainer, SANMCrossEntropyTrainer

METHODS = {
    "ce": (CrossEntropyTrainer, SANMCrossEntropyTrainer),
}
