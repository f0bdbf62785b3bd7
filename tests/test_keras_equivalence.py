"""The package's cross-entropy trainer takes the same steps as Keras' own `fit`."""

import keras
import numpy as np
import pytest

import keras_sanm
from benchmarks.harness.keras_baseline import with_coupled_l2

from conftest import learnable_problem, small_cnn


def _weights(model):
    return [np.array(keras.ops.convert_to_numpy(v)) for v in model.weights]


def _train_both(weight_decay, decoupled=False):
    """Four steps of the package's CE and of Keras `fit` from the same weights and batches."""
    x, y = learnable_problem(n=128, seed=5)
    base = small_cnn()
    start = base.get_weights()
    ours = keras_sanm.wrap(base, sanm=False, seed=0, augment=None)  # the same batches
    ours.compile(optimizer=keras.optimizers.SGD(0.05, momentum=0.9), weight_decay=weight_decay)
    ours.fit(x, y, batch_size=32, epochs=1, shuffle=False, verbose=0)
    reference = small_cnn(name="reference")
    reference.set_weights(start)
    if decoupled:  # Keras' own SGD weight decay: applied outside the momentum buffer
        optimizer = keras.optimizers.SGD(0.05, momentum=0.9, weight_decay=weight_decay)
    else:
        reference = with_coupled_l2(reference, weight_decay)
        optimizer = keras.optimizers.SGD(0.05, momentum=0.9)
    reference.compile(optimizer=optimizer,
                      loss=keras.losses.SparseCategoricalCrossentropy(from_logits=True))
    reference.fit(x, y, batch_size=32, epochs=1, shuffle=False, verbose=0)
    return _weights(base), _weights(reference), start


@pytest.mark.parametrize("weight_decay", [0.0, 5e-3])
def test_ce_steps_equal_keras_fit_with_coupled_l2(weight_decay):
    ours, reference, start = _train_both(weight_decay)
    assert len(ours) == len(reference)
    moved = max(np.abs(a - s).max() for a, s in zip(ours, start))
    assert moved > 1e-2  # the steps changed the weights
    for a, b in zip(ours, reference):  # batch-norm statistics included
        np.testing.assert_allclose(a, b, rtol=1e-4, atol=2e-5)


def test_keras_decoupled_weight_decay_is_another_regulariser():
    ours, decoupled, _ = _train_both(5e-2, decoupled=True)
    difference = max(np.abs(a - b).max() for a, b in zip(ours, decoupled))
    assert difference > 1e-3
