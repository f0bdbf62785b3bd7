"""SSR's selection (relabel, neighbour votes, clean test, class-balanced sampler) and its
consistency loss against direct NumPy computations of the official formulas."""

import keras
import numpy as np
import pytest

from keras_sanm.methods.ssr import knn_selection
from keras_sanm.training import losses


def brute_force_votes(features, labels, num_classes, k, class_prior):
    """The reference's rule written out: all cosine similarities, the k most
    similar samples (itself included), one vote each, divided by the prior."""
    f = features / np.linalg.norm(features, axis=1, keepdims=True)
    similarity = f @ f.T
    votes = np.zeros((len(labels), num_classes))
    for i in range(len(labels)):
        for j in np.argsort(-similarity[i], kind="stable")[:k]:
            votes[i, labels[j]] += 1.0 / k
    if class_prior:
        prior = np.bincount(labels, minlength=num_classes) + 1e-10
        votes /= prior / prior.sum()
    return votes / votes.sum(axis=1, keepdims=True)


def clustered(n=120, classes=3, dim=8, seed=0):
    """Features in class clusters; labels flipped for a fifth of the samples."""
    rng = np.random.default_rng(seed)
    true = rng.integers(0, classes, n)
    centres = rng.normal(size=(classes, dim)) * 3
    features = centres[true] + rng.normal(size=(n, dim))
    noisy = true.copy()
    flip = rng.random(n) < 0.2
    noisy[flip] = (true[flip] + 1) % classes
    return features.astype("float32"), true, noisy, flip


def test_relabel_takes_confident_predictions_only():
    probabilities = np.array([[0.95, 0.05], [0.9, 0.1], [0.2, 0.8], [0.01, 0.99]])
    labels = np.array([1, 1, 0, 0])
    # Strictly above 0.9: the second sample keeps its label.
    np.testing.assert_array_equal(knn_selection.relabel(probabilities, labels, 0.9),
                                  [0, 1, 0, 1])


@pytest.mark.parametrize("class_prior", [True, False])
def test_votes_match_the_written_out_rule(class_prior):
    features, _, noisy, _ = clustered()
    ours = knn_selection.knn_label_votes(features, noisy, 3, k=15, class_prior=class_prior,
                                         chunk_size=50)  # chunks do not change the votes
    np.testing.assert_allclose(ours, brute_force_votes(features, noisy, 3, 15, class_prior),
                               rtol=1e-5, atol=1e-6)


def test_the_class_prior_lifts_a_rare_class():
    labels = np.array([0] * 8 + [1] * 2)
    features = np.eye(10, dtype="float32") + 0.01  # every neighbourhood: near-uniform
    with_prior = knn_selection.knn_label_votes(features, labels, 2, k=10)
    without = knn_selection.knn_label_votes(features, labels, 2, k=10, class_prior=False)
    np.testing.assert_allclose(without[0], [0.8, 0.2], atol=1e-6)
    np.testing.assert_allclose(with_prior[0], [0.5, 0.5], atol=1e-6)


def test_selection_keeps_labels_their_neighbourhood_shares():
    features, _, noisy, flip = clustered()
    votes = knn_selection.knn_label_votes(features, noisy, 3, k=15)
    clean, score = knn_selection.select_clean(votes, noisy, 1.0)
    assert score.min() >= 0 and score.max() == 1.0
    # Flipped labels disagree with their cluster: far fewer of them pass.
    assert clean[~flip].mean() > 0.9 and clean[flip].mean() < 0.2
    # A sample is its own nearest neighbour: with k=1 every label passes.
    lone = knn_selection.knn_label_votes(features, noisy, 3, k=1)
    assert knn_selection.select_clean(lone, noisy)[0].all()
    # Ties count as clean; a lower threshold keeps more.
    tie = np.array([[0.5, 0.5]])
    assert knn_selection.select_clean(tie, np.array([1]))[0].all()
    assert clean.sum() <= knn_selection.select_clean(votes, noisy, 0.5)[0].sum()


def test_class_balanced_order_draws_every_class_equally():
    labels = np.array([0] * 10 + [1] * 3 + [2] * 5)
    selected = np.ones(18, bool)
    selected[15:] = False  # class 2 keeps 2 selected samples
    order = knn_selection.class_balanced_order(labels, selected, np.random.default_rng(0))
    assert len(order) == 3 * 10 and set(order) <= set(np.flatnonzero(selected))
    np.testing.assert_array_equal(np.bincount(labels[order], minlength=3), [10, 10, 10])
    assert set(order[labels[order] == 2]) == {13, 14}
    empty = knn_selection.class_balanced_order(labels, np.zeros(18, bool),
                                               np.random.default_rng(0))
    assert len(empty) == 0


def test_negative_cosine_similarity():
    rng = np.random.default_rng(0)
    p, z = rng.normal(size=(6, 5)).astype("float32"), rng.normal(size=(6, 5)).astype("float32")
    expected = -np.mean(np.sum(p * z, 1) / (np.linalg.norm(p, axis=1) * np.linalg.norm(z, axis=1)))
    ours = keras.ops.convert_to_numpy(losses.negative_cosine_similarity(p, z))
    np.testing.assert_allclose(ours, expected, rtol=1e-5)
    assert float(keras.ops.convert_to_numpy(losses.negative_cosine_similarity(p, 2 * p))) == (
        pytest.approx(-1.0))
