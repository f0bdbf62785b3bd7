"""Reference hyper-parameters by dataset and noise (docs/algorithms.md, "Presets").

Wrong settings are the most common reason DivideMix fails to reproduce; a
preset gives the reference values for one cell of the CIFAR tables:

* DivideMix (`DM-code`): 301 epochs, warm-up 10 (CIFAR-10) / 30 (CIFAR-100),
  `lambda_u` per cell (DivideMix Table 7), `tau` 0.6 and a 5-epoch loss
  history at 90% noise, the confidence penalty for asymmetric noise.
* SANM(DivideMix) (`SANM-code`): 361 epochs, warm-up 10 / 20, warm-up
  gradient clip 1.0; `lambda_u` per cell taken from the DivideMix table
  (SANM's own values are not published).

Both use batch 64 (warm-up 128), alpha 4, T 0.5 and the default `compile()`
(SGD 0.02, momentum 0.9, weight decay 5e-4, /10 from epoch 150).

The other methods (the same cells; with or without SANM):

* Co-teaching (`CT-code`): `forget_rate` = the noise rate, Adam decay from
  epoch 80 (CIFAR-100: 100); 199 training epochs, batch 128, CNN9.
* CDR (`CDR-code`): `noise_rate` = the noise rate; 200 epochs, batch 64.
* ELR+ (`ELR-code` configs): `beta` / `lambda_elr` 0.7 / 3 (CIFAR-10 sym),
  0.9 / 1 (CIFAR-10 asym), 0.9 / 7 with a 40000-step ramp of the ELR weight
  (CIFAR-100); learning-rate drop at 150 (CIFAR-100 200); 200 (250) epochs,
  batch 128 (`num_samples` comes from the first `fit`).

Example:
>>> model = keras_sanm.wrap(base, method="dividemix", preset="cifar10-sym-0.9")
>>> model.threshold, model.lambda_u, model.history_length
(0.6, 50.0, 5)
"""

from __future__ import annotations

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

WARMUP_EPOCHS = {
    (False, "cifar10"): 10,
    (False, "cifar100"): 30,
    (True, "cifar10"): 10,
    (True, "cifar100"): 20,
}

PRESETS = sorted(f"{dataset}-{noise}" for dataset, noise in LAMBDA_U)
PRESET_METHODS = ("dividemix", "coteaching", "cdr", "elr_plus")


def parse_preset(name: str) -> tuple[str, str, float]:
    """`"cifar10-sym-0.5"` -> `("cifar10", "sym", 0.5)`; unknown names raise."""
    dataset, _, noise = name.partition("-")
    if (dataset, noise) not in LAMBDA_U:
        raise ValueError(f"Unknown preset {name!r}; available: {PRESETS}.")
    mode, _, rate = noise.partition("-")
    return dataset, mode, float(rate)


def preset_config(name: str, method: str = "dividemix", sanm: bool = True) -> dict:
    """Method options of a named reference setting.

    Args:
        name: `"<dataset>-<sym|asym>-<rate>"`, one of `PRESETS`.
        method: the training method (one of `PRESET_METHODS`).
        sanm: SANM's settings (True) or the plain method's (they differ
            for DivideMix only).

    Returns:
        Keyword arguments for the method's trainer (DivideMix: `lambda_u`,
        `threshold`, `warmup_epochs`, `history_length`, `confidence_penalty`,
        `epochs`; see the module docstring for the others).
    """
    if method not in PRESET_METHODS:
        raise ValueError(f"Presets exist for methods {PRESET_METHODS}; got method={method!r}.")
    dataset, mode, rate = parse_preset(name)
    if method == "coteaching":
        return {"forget_rate": rate, "decay_start": 80 if dataset == "cifar10" else 100}
    if method == "cdr":
        return {"noise_rate": rate}
    if method == "elr_plus":
        if dataset == "cifar100":
            return {"beta": 0.9, "lambda_elr": 7.0, "coef_step": 40000,
                    "drop_epoch": 200, "epochs": 250}
        beta, weight = (0.9, 1.0) if mode == "asym" else (0.7, 3.0)
        return {"beta": beta, "lambda_elr": weight, "coef_step": 0,
                "drop_epoch": 150, "epochs": 200}
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
