"""Synthetic label noise (docs/algorithms.md, "Label noise") and the reference's noise files."""

from __future__ import annotations

import json
import os
import random

import numpy as np

from keras_sanm.data.validation import check_labels

# CIFAR-10 class-dependent flips (DM-code): truck->automobile, bird->airplane,
# deer->horse, cat<->dog.
CIFAR10_ASYM = {9: 1, 2: 0, 4: 7, 3: 5, 5: 3}

# True CIFAR-100 super-classes (fine-label ids).
CIFAR100_SUPERCLASSES = (
    (4, 30, 55, 72, 95), (1, 32, 67, 73, 91), (54, 62, 70, 82, 92),
    (9, 10, 16, 28, 61), (0, 51, 53, 57, 83), (22, 39, 40, 86, 87),
    (5, 20, 25, 84, 94), (6, 7, 14, 18, 24), (3, 42, 43, 88, 97),
    (12, 17, 37, 68, 76), (23, 33, 49, 60, 71), (15, 19, 21, 31, 38),
    (34, 63, 64, 66, 75), (26, 45, 77, 79, 99), (2, 11, 35, 46, 98),
    (27, 29, 44, 78, 93), (36, 50, 65, 74, 80), (47, 52, 56, 59, 96),
    (8, 13, 48, 58, 90), (41, 69, 81, 85, 89),
)


def asymmetric_map(num_classes: int) -> dict[int, int]:
    """Class flips of the asymmetric noise for CIFAR-10 (10) and CIFAR-100 (100).

    CIFAR-100 flips each class to the next member of its true super-class,
    cyclically (docs/algorithms.md, "Label noise").
    """
    if num_classes == 10:
        return dict(CIFAR10_ASYM)
    if num_classes == 100:
        mapping = {}
        for members in CIFAR100_SUPERCLASSES:
            ordered = sorted(members)
            for i, c in enumerate(ordered):
                mapping[c] = ordered[(i + 1) % len(ordered)]
        return mapping
    raise ValueError(
        f"No built-in asymmetric noise for {num_classes} classes; pass "
        "`mapping={source: target, ...}`."
    )


def inject_noise(
    labels,
    num_classes: int,
    mode: str = "sym",
    rate: float = 0.5,
    seed: int = 123,
    include_true_class: bool = True,
    mapping: dict[int, int] | None = None,
) -> np.ndarray:
    """Corrupts labels as the DivideMix/SANM reference code does.

    Exactly `int(rate * N)` samples are chosen (Python's `random` seeded with
    `seed`, then `shuffle(range(N))`), and in index order each chosen sample
    gets a new label: for `"sym"` uniform over all `num_classes` classes
    (`randint(0, C-1)`), so the true class can be drawn and the actual
    corruption rate is `rate * (C-1)/C` (50% -> 45% on CIFAR-10); for `"asym"`
    the class map (`CIFAR10_ASYM`, CIFAR-100 super-classes, or `mapping`).
    With the defaults this reproduces the reference noise files bit for bit.

    `include_true_class=False` ("sym" only) gives the exact-rate variant:
    each chosen sample moves to a uniformly drawn *other* class, so exactly
    `int(rate * N)` labels are wrong.

    Args:
        labels: `(N,)` true integer labels.
        num_classes: number of classes.
        mode: `"sym"` or `"asym"`.
        rate: noise rate in `[0, 1]`.
        seed: seed of the generator (123 in the reference).
        include_true_class: see above.
        mapping: class map for `"asym"` on other datasets.

    Returns:
        `(N,)` int64 noisy labels.

    Example:
    >>> noisy = inject_noise(np.arange(10) % 10, 10, "sym", 0.5, seed=0)
    """
    labels = check_labels(labels, None, num_classes)
    if mode not in ("sym", "asym"):
        raise ValueError(f"mode must be 'sym' or 'asym'; got {mode!r}.")
    if not 0.0 <= rate <= 1.0:
        raise ValueError(f"rate must be in [0, 1]; got {rate}.")
    if mode == "asym":
        mapping = asymmetric_map(num_classes) if mapping is None else dict(mapping)
        if any(not 0 <= v < num_classes for v in mapping.values()):
            raise ValueError("mapping targets must be valid class ids.")
    rng = random.Random(seed)
    n = len(labels)
    order = list(range(n))
    rng.shuffle(order)
    chosen = set(order[: int(rate * n)])
    noisy = labels.copy()
    for i in range(n):
        if i not in chosen:
            continue
        if mode == "asym":
            noisy[i] = mapping.get(int(labels[i]), int(labels[i]))
        elif include_true_class:
            noisy[i] = rng.randint(0, num_classes - 1)
        else:
            other = rng.randint(0, num_classes - 2)
            noisy[i] = other + (other >= labels[i])
    return noisy


def noise_file_name(dataset: str, rate: float, mode: str) -> str:
    """`<dataset>_<rate with 1 decimal>_<mode>.json` (reference name plus the dataset)."""
    return f"{dataset}_{rate:.1f}_{mode}.json"


def save_noise_file(path: str, noisy_labels) -> None:
    """Writes noisy labels as the reference does: a JSON list of integers."""
    noisy_labels = check_labels(noisy_labels)
    os.makedirs(os.path.dirname(os.path.abspath(path)), exist_ok=True)
    tmp = f"{path}.tmp"
    with open(tmp, "w") as f:
        json.dump([int(v) for v in noisy_labels], f)
    os.replace(tmp, path)


def load_noise_file(path: str, num_samples: int | None = None, num_classes: int | None = None):
    """Reads a JSON list of noisy labels (reference format) and checks it."""
    with open(path) as f:
        values = json.load(f)
    if not isinstance(values, list):
        raise ValueError(f"{path} does not hold a JSON list of labels.")
    labels = np.asarray(values)
    try:
        return check_labels(labels, num_samples, num_classes)
    except ValueError as err:
        raise ValueError(f"Noise file {path}: {err}") from None


def noisy_labels_from_file(path: str, labels, num_classes: int, **noise_args):
    """Loads the noise file at `path`, or creates it with `inject_noise` first.

    Returns:
        `(noisy_labels, created)`.
    """
    labels = check_labels(labels, None, num_classes)
    if os.path.exists(path):
        return load_noise_file(path, len(labels), num_classes), False
    noisy = inject_noise(labels, num_classes, **noise_args)
    save_noise_file(path, noisy)
    return noisy, True
