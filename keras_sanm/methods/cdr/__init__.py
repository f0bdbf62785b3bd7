"""CDR and SANM(CDR): declaration (the algorithm is in `trainers.py`)."""

from keras_sanm.methods.spec import MethodSpec, lazy_trainers_module


def preset(dataset: str, mode: str, rate: float, sanm: bool) -> dict:
    """CDR-code: `noise_rate` is the cell's noise rate."""
    return {"noise_rate": rate}


SPEC = MethodSpec(
    name="cdr", label="CDR",
    plain="CDRTrainer", with_sanm="SANMCDRTrainer",
    masked_targets=True, reference_epochs=200,
    noise_rate_option="noise_rate", preset=preset,
)

__getattr__ = lazy_trainers_module("cdr")
