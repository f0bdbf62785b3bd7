"""Training methods: name -> (plain trainer, SANM trainer)."""

from keras_sanm.methods.cdr import CDRTrainer, SANMCDRTrainer
from keras_sanm.methods.ce import CrossEntropyTrainer, SANMCrossEntropyTrainer
from keras_sanm.methods.coteaching import CoteachingTrainer, SANMCoteachingTrainer
from keras_sanm.methods.dividemix import DivideMixTrainer, SANMDivideMixTrainer
from keras_sanm.methods.elr_plus import ELRPlusTrainer, SANMELRPlusTrainer

METHODS = {
    "ce": (CrossEntropyTrainer, SANMCrossEntropyTrainer),
    "coteaching": (CoteachingTrainer, SANMCoteachingTrainer),
    "cdr": (CDRTrainer, SANMCDRTrainer),
    "dividemix": (DivideMixTrainer, SANMDivideMixTrainer),
    "elr_plus": (ELRPlusTrainer, SANMELRPlusTrainer),
}
