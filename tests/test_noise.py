import json
import random

import numpy as np
import pytest

from keras_sanm.data import (
    asymmetric_map,
    inject_noise,
    load_noise_file,
    noise_file_name,
    noisy_labels_from_file,
    save_noise_file,
)


def reference_generator(labels, rate, mode, num_classes, seed=123):
    """The reference's generation order, written out step by step (docs/algorithms.md, "Label noise")."""
    random.seed(seed)
    n = len(labels)
    idx = list(range(n))
    random.shuffle(idx)
    noisy_idx = idx[: int(rate * n)]
    out = []
    transition = {0: 0, 2: 0, 4: 7, 7: 7, 1: 1, 9: 1, 3: 5, 5: 3, 6: 6, 8: 8}
    for i in range(n):
        if i in noisy_idx:
            out.append(random.randint(0, num_classes - 1) if mode == "sym" else transition[labels[i]])
        else:
            out.append(labels[i])
    return np.array(out)


@pytest.mark.parametrize("mode", ["sym", "asym"])
def test_matches_reference_generator(mode):
    labels = np.random.default_rng(0).integers(0, 10, 2000)
    ours = inject_noise(labels, 10, mode, 0.5)
    np.testing.assert_array_equal(ours, reference_generator(list(labels), 0.5, mode, 10))


def test_symmetric_rates():
    labels = np.arange(20000) % 10
    noisy = inject_noise(labels, 10, "sym", 0.5, seed=1)
    # int(0.5 N) chosen, each redrawn over all 10 classes: about 45% wrong.
    assert abs(np.mean(noisy != labels) - 0.45) < 0.01
    exact = inject_noise(labels, 10, "sym", 0.5, seed=1, include_true_class=False)
    assert np.sum(exact != labels) == 10000
    assert np.array_equal(inject_noise(labels, 10, "sym", 0.0), labels)


def test_asymmetric_map_exact():
    labels = np.repeat(np.arange(10), 1000)
    noisy = inject_noise(labels, 10, "asym", 0.4, seed=2)
    changed = noisy != labels
    expected = {9: 1, 2: 0, 4: 7, 3: 5, 5: 3}
    for src in range(10):
        moved = noisy[(labels == src) & changed]
        if src in expected:
            assert np.all(moved == expected[src])
            assert abs(np.mean(changed[labels == src]) - 0.4) < 0.05
        else:
            assert moved.size == 0
    m100 = asymmetric_map(100)
    assert m100[4] == 30 and m100[95] == 4 and len(set(m100.values())) == 100


def test_bad_arguments():
    with pytest.raises(ValueError, match="mode"):
        inject_noise([0, 1], 2, "pair", 0.2)
    with pytest.raises(ValueError, match="rate"):
        inject_noise([0, 1], 2, "sym", 1.5)
    with pytest.raises(ValueError, match="No built-in asymmetric"):
        inject_noise([0, 1], 7, "asym", 0.2)
    with pytest.raises(ValueError, match="out of range"):
        inject_noise([0, 5], 3, "sym", 0.2)


def test_noise_file_round_trip(tmp_path):
    labels = np.arange(100) % 10
    path = tmp_path / noise_file_name("cifar10", 0.5, "sym")
    assert path.name == "cifar10_0.5_sym.json"
    first, created = noisy_labels_from_file(str(path), labels, 10, mode="sym", rate=0.5)
    assert created and json.loads(path.read_text()) == [int(v) for v in first]
    second, created = noisy_labels_from_file(str(path), labels, 10, mode="sym", rate=0.9, seed=5)
    assert not created and np.array_equal(first, second)  # the file wins
    save_noise_file(str(tmp_path / "bad.json"), [0, 1])
    with pytest.raises(ValueError, match="Got 2 labels for 100"):
        load_noise_file(str(tmp_path / "bad.json"), 100, 10)
