import keras
import numpy as np
import pytest
from keras import ops

import keras_sanm
from keras_sanm.methods.cdr.trainers import critical_gradient_mask

from conftest import learnable_problem, small_cnn


def numpy_values(variables):
    return [np.array(ops.convert_to_numpy(v)) for v in variables]


def test_critical_mask_keeps_the_top_fraction_pooled_over_tensors():
    rng = np.random.default_rng(0)
    grads = [rng.normal(size=(3, 4)).astype("float32"), rng.normal(size=(2, 2, 2, 3)).astype("float32")]
    values = [rng.normal(size=g.shape).astype("float32") for g in grads]
    masked = [ops.convert_to_numpy(m) for m in critical_gradient_mask(grads, values, 0.25)]
    importance = np.concatenate([np.abs(g * v).ravel() for g, v in zip(grads, values)])
    keep = int(0.75 * importance.size)
    critical = importance >= np.sort(importance)[::-1][keep - 1]
    expected = np.concatenate([g.ravel() for g in grads]) * critical * 0.75
    np.testing.assert_allclose(np.concatenate([m.ravel() for m in masked]), expected, rtol=1e-6)
    assert critical.sum() == keep


def test_cdr_step_masks_only_non_critical_kernel_gradients(problem):
    """Against a plain CE step from the same weights: kernels get kappa * g on
    the top (1 - tau) entries by |w * g| and nothing elsewhere; biases and BN
    parameters get the full gradient."""
    x, y = problem
    x, y = x[:32], y[:32]
    base = small_cnn()
    copy = keras.models.clone_model(base)
    copy.set_weights(base.get_weights())
    ce = keras_sanm.wrap(base, method="ce", sanm=False)
    cdr = keras_sanm.wrap(copy, method="cdr", sanm=False, noise_rate=0.4)
    lr = 0.1
    for model in (ce, cdr):
        model.compile(optimizer=keras.optimizers.SGD(lr), weight_decay=0.0)
    start = numpy_values(cdr.trainable_variables)
    ce.train_on_batch(x, y)
    cdr.train_on_batch(x, y)
    ce_step = [b - a for a, b in zip(start, numpy_values(ce.trainable_variables))]
    cdr_step = [b - a for a, b in zip(start, numpy_values(cdr.trainable_variables))]
    pooled = [i for i, v in enumerate(cdr.trainable_variables) if len(v.shape) in (2, 4)]
    others = [i for i in range(len(start)) if i not in pooled]
    assert pooled and others
    gradients = [-ce_step[i] / lr for i in pooled]
    importance = np.concatenate([np.abs(start[i] * g).ravel() for i, g in zip(pooled, gradients)])
    keep = int(0.6 * importance.size)
    threshold = np.sort(importance)[::-1][keep - 1]
    for i, g in zip(pooled, gradients):
        critical = np.abs(start[i] * g) >= threshold
        np.testing.assert_allclose(cdr_step[i], -lr * 0.6 * g * critical, atol=1e-6)
    for i in others:
        np.testing.assert_allclose(cdr_step[i], ce_step[i], atol=1e-6)
    changed = sum(int(np.count_nonzero(cdr_step[i])) for i in pooled)
    assert changed <= keep and changed > 0.5 * keep


def test_sanm_cdr_leaves_the_decoder_unmasked(problem):
    x, y = problem
    model = keras_sanm.wrap(small_cnn(), method="cdr", noise_rate=0.5, seed=0)
    model.compile(optimizer=keras.optimizers.SGD(0.1), weight_decay=0.0)
    before = numpy_values(model.decoder.trainable_variables)
    network_before = numpy_values(model.network.trainable_variables)
    model.train_on_batch(x[:32], y[:32])
    after = numpy_values(model.decoder.trainable_variables)
    # Every decoder entry moves (no mask there).
    for a, b in zip(before, after):
        assert np.count_nonzero(a - b) == a.size
    kernels = [(a, b) for a, b, v in zip(network_before,
                                         numpy_values(model.network.trainable_variables),
                                         model.network.trainable_variables)
               if len(v.shape) in (2, 4)]
    moved = sum(np.count_nonzero(b - a) for a, b in kernels)
    total = sum(a.size for a, _ in kernels)
    assert moved <= 0.5 * total + 1


def test_cdr_defaults_and_errors():
    model = keras_sanm.wrap(small_cnn(), method="cdr", sanm=False, noise_rate=0.2)
    model.compile()
    assert model.l2_weight_decay == pytest.approx(1e-3)
    assert float(model.optimizer.learning_rate) == pytest.approx(0.01)
    assert model._lr_schedule.rate(38) == pytest.approx(0.01)
    assert model._lr_schedule.rate(39) == pytest.approx(0.001)
    assert model._lr_schedule.rate(79) == pytest.approx(0.0001)
    with pytest.raises(ValueError, match="estimate_after"):
        keras_sanm.wrap(small_cnn(), method="cdr", sanm=False, estimate_after=0)
    with pytest.raises(ValueError, match="noise_rate"):
        keras_sanm.wrap(small_cnn(), method="cdr", noise_rate=-0.1)


@pytest.mark.slow
def test_short_cdr_fit_learns():
    x, y = learnable_problem(n=384, seed=1)
    x_test, y_test = learnable_problem(n=200, seed=2)
    noisy = keras_sanm.data.inject_noise(y, 4, "sym", 0.2, seed=0)
    for sanm in (False, True):
        model = keras_sanm.wrap(small_cnn(), method="cdr", sanm=sanm, seed=0, noise_rate=0.2)
        model.compile(optimizer=keras.optimizers.SGD(0.05, momentum=0.9))
        model.fit(x, noisy, batch_size=32, epochs=6, verbose=0)
        acc = model.evaluate(x_test, y_test, verbose=0, return_dict=True)["accuracy"]
        assert acc > 0.7, (sanm, acc)


def test_dynamic_noise_rate_masks_as_the_fixed_one():
    rng = np.random.default_rng(0)
    grads = [rng.normal(size=(3, 3, 2, 4)).astype("float32"), rng.normal(size=(8, 5)).astype("float32")]
    values = [rng.normal(size=g.shape).astype("float32") for g in grads]
    for rate in (0.0, 0.25, 0.6):
        fixed = critical_gradient_mask(grads, values, rate)
        dynamic = critical_gradient_mask(grads, values, keras.Variable(rate, trainable=False))
        for a, b in zip(fixed, dynamic):
            np.testing.assert_allclose(ops.convert_to_numpy(a), ops.convert_to_numpy(b),
                                       rtol=1e-6)
