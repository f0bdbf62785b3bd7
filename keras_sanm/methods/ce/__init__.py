"""Cross-entropy training and SANM(CE): declaration (the algorithm is in `trainers.py`)."""

from keras_sanm.methods.spec import MethodSpec, lazy_trainers_module

SPEC = MethodSpec(
    name="ce", label="CE",
    plain="CrossEntropyTrainer", with_sanm="SANMCrossEntropyTrainer",
    masked_targets=True,
)

__getattr__ = lazy_trainers_module("ce")
