"""Reference hyper-parameters by dataset and noise (methods.md §1.11, §2.9-2.10).

Wrong settings are the most common reason DivideMix fails to reproduce; a
preset gives the reference values for one cell of the CIFAR tables:

* DivideMix (`DM-code`): 301 epochs, warm-up 10 (CIFAR-10) / 30 (CIFAR-100),
  `lambda_u` per cell (DivideMix Table 7), `tau` 0.6 and a 5-epoch loss
  history at 90% noise, the confidence penalty for asymmetric noise.
* SANM(DivideMix) (`SANM-code`): 361 epochs, warm-up 10 / 20, warm-up
  gradient clip 1.0; `lambda_u` per cell taken from the DivideMix table
  (SANM's own values are not published, methods.md §1.11).

Both use batch 64 (warm-up 128), alpha 4, T 0.5 and the default `compile()`
(SGD 0.02, momentum 0.9, weight decay 5e-4, /10 from epoch 150).

Example:
>>> model = keras_sanm.wrap(base, method="dividemix", preset="cifar10-sym-0.9")
>>> model.threshold, model.lambda_u, model.history_length
(0.6, 50.0, 5)
"""

from __future__ import annotations

# (dataset, noise) -> lambda_u (DivideMix Table 7 via DM-issues; methods.md §2.10).
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
        method: the training method (presets exist for `"dividemix"`).
        sanm: SANM's settings (True) or plain DivideMix's.

    Returns:
        Keyword arguments for the method's trainer (`lambda_u`, `threshold`,
        `warmup_epochs`, `history_length`, `confidence_penalty`, `epochs`).
    """
    if method != "dividemix":
        raise ValueError(f"Presets exist for method='dividemix'; got method={method!r}.")
    dataset, mode, rate = parse_preset(name)
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
