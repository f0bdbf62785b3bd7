"""ELR+ and SANM(ELR+): declaration (the algorithm is in `trainers.py`)."""

from keras_sanm.methods.spec import MethodSpec, lazy_trainers_module


def preset(dataset: str, mode: str, rate: float, sanm: bool) -> dict:
    """ELR-code's configs: `beta` / `lambda_elr` per dataset and noise kind."""
    if dataset == "cifar100":
        return {"beta": 0.9, "lambda_elr": 7.0, "coef_step": 40000,
                "drop_epoch": 200, "epochs": 250}
    beta, weight = (0.9, 1.0) if mode == "asym" else (0.7, 3.0)
    return {"beta": beta, "lambda_elr": weight, "coef_step": 0,
            "drop_epoch": 150, "epochs": 200}


def small_data_options(samples: int, batch_size: int) -> dict:
    """Batches smaller than the data (ELR+ builds its own), and the data size (its
    per-sample targets; `fit` would set it, a model built without `fit` needs it)."""
    return {"batch_size": batch_size, "num_samples": samples}


SPEC = MethodSpec(
    name="elr_plus", label="ELR+",
    plain="ELRPlusTrainer", with_sanm="SANMELRPlusTrainer",
    masked_targets=True,
    batch_size=128, batch_size_option=True, reference_epochs=200, preset=preset,
    small_data_options=small_data_options,
)

__getattr__ = lazy_trainers_module("elr_plus")
