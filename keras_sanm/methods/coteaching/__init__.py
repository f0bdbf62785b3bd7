"""Co-teaching and SANM(Co-teaching): declaration (the algorithm is in `trainers.py`)."""

from keras_sanm.methods.spec import MethodSpec, lazy_trainers_module


def preset(dataset: str, mode: str, rate: float, sanm: bool) -> dict:
    """CT-code: forget the noise rate; Adam's decay from epoch 80 (CIFAR-100: 100)."""
    return {"forget_rate": rate, "decay_start": 80 if dataset == "cifar10" else 100}


SPEC = MethodSpec(
    name="coteaching", label="Co-teaching",
    plain="CoteachingTrainer", with_sanm="SANMCoteachingTrainer",
    masked_targets=True,
    backbone="cnn9", batch_size=128,
    reference_epochs=199,  # CT-code: epochs 1..199 of a 200-epoch loop
    augment=None,  # the reference trains on unaugmented images
    noise_rate_option="forget_rate", preset=preset,
)

__getattr__ = lazy_trainers_module("coteaching")
