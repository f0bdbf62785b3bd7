"""DivideMix and SANM(DivideMix): declaration (the algorithm is in `trainers.py`)."""

from keras_sanm.methods.spec import MethodSpec, lazy_trainers_module

# (dataset, noise) -> lambda_u (DivideMix Table 7, as its authors gave it for each cell).
LAMBDA_U = {
    ("cifar10", "sym-0.2"): 0.0,
    ("cifar10", "sym-0.5"): 25.0,
    ("cifar10", "sym-0.8"): 25.0,
    ("cifar10", "sym-0.9"): 50.0,
    ("cifar10", "asym-0.4"): 0.0,
    ("cifar100", "sym-0.2"): 25.0,
    ("cifar100", "sym-0.5"): 150.0,
    ("cifar100", "sym-0.8"): 150.0,
    ("cifar100", "sym-0.9"): 150.0,
    ("cifar100", "asym-0.4"): 150.0,
}

# (SANM, dataset) -> warm-up epochs (DM-code; SANM-code).
WARMUP_EPOCHS = {
    (False, "cifar10"): 10,
    (False, "cifar100"): 30,
    (True, "cifar10"): 10,
    (True, "cifar100"): 20,
}


def preset(dataset: str, mode: str, rate: float, sanm: bool) -> dict:
    """DM-code (plain) and SANM-code (SANM) settings of one CIFAR cell."""
    noise = f"{mode}-{rate}"
    high_noise = noise == "sym-0.9"
    return {
        "lambda_u": LAMBDA_U[(dataset, noise)],
        "threshold": 0.6 if high_noise else 0.5,
        "history_length": 5 if high_noise else 1,
        "confidence_penalty": mode == "asym",
        "warmup_epochs": WARMUP_EPOCHS[(bool(sanm), dataset)],
        "epochs": 361 if sanm else 301,
    }


def training_data(model, images, labels, batch_size, num_classes, seed, clean_labels):
    """`CoDivideData` with the model's views (true labels kept for reporting)."""
    from keras_sanm.data import CoDivideData

    return CoDivideData(images, labels, batch_size, num_classes, views=model.views,
                        warmup_augment=model.warmup_augment, seed=seed,
                        clean_labels=clean_labels)


# SANM(DivideMix)'s warm-up augmentations (`warmup_augment`, `--warmup-augment`), default first.
WARMUP_AUGMENTS = ("strong_warmup", "autoaugment", "weak")

def small_data_options(samples: int, batch_size: int) -> dict:
    """Small batches and a one-epoch warm-up: the second epoch co-divides."""
    return {"batch_size": batch_size, "warmup_epochs": 1}


SPEC = MethodSpec(
    name="dividemix", label="DivideMix",
    plain="DivideMixTrainer", with_sanm="SANMDivideMixTrainer",
    batch_size_option=True, reference_epochs=301, preset=preset, preset_by_noise=True,
    sanm_parts=("strong_views", "strong_warmup", "masking"),
    training_data=training_data, small_data_options=small_data_options,
)

__getattr__ = lazy_trainers_module("dividemix")
