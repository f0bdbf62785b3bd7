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

# The reference cells: (dataset, noise kind-rate), as in the CIFAR tables.
CELLS = (
    ("cifar10", "sym-0.2"), ("cifar10", "sym-0.5"), ("cifar10", "sym-0.8"),
    ("cifar10", "sym-0.9"), ("cifar10", "asym-0.4"),
    ("cifar100", "sym-0.2"), ("cifar100", "sym-0.5"), ("cifar100", "sym-0.8"),
    ("cifar100", "sym-0.9"), ("cifar100", "asym-0.4"),
)
PRESETS = sorted(f"{dataset}-{noise}" for dataset, noise in CELLS)


def preset_methods() -> tuple[str, ...]:
    """The methods that declare reference settings per cell."""
    from keras_sanm import methods

    return tuple(name for name in methods.names() if methods.get(name).preset is not None)


def parse_preset(name: str) -> tuple[str, str, float]:
    """`"cifar10-sym-0.5"` -> `("cifar10", "sym", 0.5)`; unknown names raise."""
    dataset, _, noise = name.partition("-")
    if (dataset, noise) not in CELLS:
        raise ValueError(f"Unknown preset {name!r}; available: {PRESETS}.")
    mode, _, rate = noise.partition("-")
    return dataset, mode, float(rate)


def preset_config(name: str, method: str = "dividemix", sanm: bool = True) -> dict:
    """Method options of a named reference setting.

    Args:
        name: `"<dataset>-<sym|asym>-<rate>"`, one of `PRESETS`.
        method: the training method (one of `preset_methods()`).
        sanm: SANM's settings (True) or the plain method's (they differ
            for DivideMix only).

    Returns:
        Keyword arguments for the method's trainer (DivideMix: `lambda_u`,
        `threshold`, `warmup_epochs`, `history_length`, `confidence_penalty`,
        `epochs`; see the module docstring for the others).
    """
    from keras_sanm import methods

    spec = methods.get(method)
    if spec.preset is None:
        raise ValueError(f"Presets exist for methods {list(preset_methods())}; "
                         f"got method={method!r}.")
    dataset, mode, rate = parse_preset(name)
    return spec.preset(dataset, mode, rate, sanm)
