import keras
import numpy as np
import pytest
from keras import ops

import keras_sanm
from keras_sanm.label_quality import per_sample_cross_entropy
from keras_sanm.methods.coteaching.trainers import forget_rate_at, small_loss_selection

from conftest import learnable_problem, small_cnn


def numpy_values(variables):
    return [np.array(ops.convert_to_numpy(v)) for v in variables]


def test_small_loss_selection_keeps_the_n_smallest():
    losses = np.array([0.5, 0.1, 0.9, 0.3, 0.7, 0.2], "float32")
    for n in range(1, 7):
        kept = ops.convert_to_numpy(small_loss_selection(losses, n))
        assert kept.sum() == n
        assert set(np.flatnonzero(kept)) == set(np.argsort(losses)[:n])


def test_forget_rate_schedule_matches_the_reference():
    # CT-code: rate_schedule[:T_k] = linspace(0, tau, T_k), tau afterwards; its
    # training epochs start at 1, our epoch 0.
    reference = np.full(200, 0.5)
    reference[:10] = np.linspace(0, 0.5, 10)
    ours = [forget_rate_at(e, 0.5) for e in range(199)]
    np.testing.assert_allclose(ours, reference[1:200])
    assert ours[0] == pytest.approx(0.5 / 9) and ours[8] == 0.5


def test_adam_schedule_matches_the_reference():
    schedule = keras_sanm.training.callbacks.AdamDecaySchedule(0.001, 80, 200)
    assert schedule.values(0) == (0.001, 0.9)
    assert schedule.values(78) == (0.001, 0.9)  # reference epoch 79
    rate, beta = schedule.values(79)  # reference epoch 80: decay starts
    assert rate == pytest.approx(0.001 * 120 / 120) and beta == 0.1
    assert schedule.values(149)[0] == pytest.approx(0.001 * 50 / 120)


def test_each_network_learns_from_its_peers_selection(problem):
    """Net k's update equals a plain CE step on the samples net (1-k) kept."""
    x, y = problem
    x, y = x[:32], y[:32]
    model = keras_sanm.wrap(small_cnn(), method="coteaching", sanm=False, seed=0,
                            forget_rate=0.4)
    model.compile(optimizer=keras.optimizers.SGD(0.5))
    model.forget_rate.assign(0.4)
    keep = int(np.floor(0.6 * 32))
    nets = model.networks
    start = [numpy_values(net.trainable_variables) for net in nets]
    scores = [ops.convert_to_numpy(net(x, training=True)) for net in nets]
    selected = [np.argsort(per_sample_cross_entropy(s, y), kind="stable")[:keep] for s in scores]
    assert set(selected[0]) != set(selected[1]), "the test needs different selections"
    model.train_on_batch(x, y)
    after = [numpy_values(net.trainable_variables) for net in nets]

    def plain_step(k, chosen):
        clone = keras.models.clone_model(nets[k])
        for variable, value in zip(clone.trainable_variables, start[k]):
            variable.assign(value)
        clone.compile(optimizer=keras.optimizers.SGD(0.5),
                      loss=keras.losses.SparseCategoricalCrossentropy(from_logits=True))
        weights = np.zeros(32, "float32")
        weights[chosen] = 32.0 / keep  # mean over the kept samples
        clone.train_on_batch(x, y, sample_weight=weights)
        return numpy_values(clone.trainable_variables)

    for k in (0, 1):
        expected = plain_step(k, selected[1 - k])
        for a, b in zip(after[k], expected):
            np.testing.assert_allclose(a, b, atol=2e-5)
        own = plain_step(k, selected[k])  # its own selection gives another update
        assert any(not np.allclose(a, b, atol=2e-5) for a, b in zip(after[k], own))


def test_forget_rate_follows_the_schedule_during_fit(problem):
    x, y = problem
    model = keras_sanm.wrap(small_cnn(), method="coteaching", sanm=False, seed=0,
                            forget_rate=0.5, gradual_epochs=3)
    history = model.fit(x[:64], y[:64], batch_size=32, epochs=4, verbose=0).history
    np.testing.assert_allclose(history["forget_rate"], [0.25, 0.5, 0.5, 0.5])
    assert float(ops.convert_to_numpy(model.forget_rate)) == 0.5
    assert history["learning_rate"] == [0.001] * 4
    assert isinstance(model.optimizer.optimizers[0], keras.optimizers.Adam)


def test_late_adam_beta_reaches_the_compiled_step(problem):
    x, y = problem
    model = keras_sanm.wrap(small_cnn(), method="coteaching", sanm=False, seed=0,
                            forget_rate=0.2, decay_start=2, total_epochs=4)
    functions = []

    class Record(keras.callbacks.Callback):
        def on_epoch_end(self, epoch, logs=None):
            functions.append(self.model.train_function)

    history = model.fit(x[:32], y[:32], batch_size=32, epochs=3, verbose=0,
                        callbacks=[Record()]).history
    # CT-code: lr * (n_epoch - i) / (n_epoch - decay_start) from reference epoch i = 2.
    np.testing.assert_allclose(history["learning_rate"], [0.001, 0.001, 0.0005])
    assert all(o.beta_1 == 0.1 for o in model.optimizer.optimizers)
    # beta_1 is a constant of the compiled step: it was rebuilt once, at the switch.
    assert functions[0] is not functions[1] and functions[1] is functions[2]


def test_sanm_coteaching_trains_networks_and_decoders_with_peer_quality(problem):
    x, y = problem
    model = keras_sanm.wrap(small_cnn(), method="coteaching", seed=0, forget_rate=0.2)
    model.compile(optimizer=keras.optimizers.SGD(0.1))
    before = numpy_values(model.trainable_variables)
    history = model.fit(x[:64], y[:64], batch_size=32, epochs=2, verbose=0).history
    after = numpy_values(model.trainable_variables)
    assert all(not np.array_equal(a, b) for a, b in zip(before, after))
    assert len(model.decoders) == 2
    for key in ("reconstruction_loss", "mask_ratio", "classification_loss", "accuracy_2"):
        assert np.all(np.isfinite(history[key]))
    assert 0.02 <= history["mask_ratio"][0] <= 0.1
    # From epoch 1 each network has its own column of clean probabilities.
    assert "label_quality" in history


def test_sanm_mask_size_follows_the_peer_quality(problem):
    x, y = problem
    model = keras_sanm.wrap(small_cnn(), method="coteaching", seed=0, forget_rate=0.2,
                            mask_config={"ratio_range": (0.05, 0.05), "quality_scale": 0.5})
    model.compile(optimizer=keras.optimizers.SGD(0.0))
    quality = np.zeros((32, 2), "float32")
    quality[:, 0] = 1.0  # network 1 trusts everything, network 2 nothing
    logs = model.train_on_batch(x[:32], y[:32], quality, return_dict=True)
    # Net 1 masks with net 2's w = 0 (ratio 0.55), net 2 with net 1's w = 1 (0.05).
    assert logs["mask_ratio"] == pytest.approx((0.55 + 0.05) / 2, abs=1e-5)


@pytest.mark.slow
def test_short_coteaching_fit_learns():
    x, y = learnable_problem(n=384, seed=1)
    x_test, y_test = learnable_problem(n=200, seed=2)
    noisy = keras_sanm.data.inject_noise(y, 4, "sym", 0.2, seed=0)
    for sanm in (False, True):
        model = keras_sanm.wrap(small_cnn(), method="coteaching", sanm=sanm, seed=0,
                                forget_rate=0.2)
        model.compile(optimizer=keras.optimizers.Adam(0.01))
        model.fit(x, noisy, batch_size=32, epochs=5, verbose=0)
        result = model.evaluate(x_test, y_test, verbose=0, return_dict=True)
        assert result["accuracy"] > 0.7 and result["accuracy_2"] > 0.7, (sanm, result)


def test_coteaching_argument_errors():
    with pytest.raises(ValueError, match="estimate_after"):
        keras_sanm.wrap(small_cnn(), method="coteaching", sanm=False, estimate_after=0)
    with pytest.raises(ValueError, match="forget_rate"):
        keras_sanm.wrap(small_cnn(), method="coteaching", sanm=False, forget_rate=1.5)
    model = keras_sanm.wrap(small_cnn(), method="coteaching", forget_rate=0.2)
    with pytest.raises(ValueError, match="batch_size is set by the dataset"):
        model.fit(tf_free_batches(), batch_size=4, epochs=1, verbose=0)


def tf_free_batches():
    class Batches(keras.utils.PyDataset):
        def __len__(self):
            return 1

        def __getitem__(self, i):
            return np.zeros((4, 16, 16, 3), "float32"), np.zeros(4, "int32")

    return Batches()


def test_presets_for_the_other_methods():
    ct = keras_sanm.wrap(small_cnn(), method="coteaching", preset="cifar100-sym-0.8")
    assert ct.final_forget_rate == 0.8 and ct.decay_start == 100
    cdr = keras_sanm.wrap(small_cnn(), method="cdr", sanm=False, preset="cifar10-asym-0.4")
    assert cdr.noise_rate == 0.4
    elr = keras_sanm.wrap(small_cnn(), method="elr_plus", num_samples=8, preset="cifar100-sym-0.5")
    assert (elr.beta, elr.lambda_elr, elr.coef_step, elr.drop_epoch, elr.epochs) == (
        0.9, 7.0, 40000, 200, 250)
    assert elr.target_weighted_labels is False  # small_cnn has 4 classes, not 100
    elr = keras_sanm.wrap(small_cnn(), method="elr_plus", num_samples=8, preset="cifar10-asym-0.4")
    assert (elr.beta, elr.lambda_elr, elr.drop_epoch) == (0.9, 1.0, 150)
    with pytest.raises(ValueError, match="Presets exist"):
        keras_sanm.wrap(small_cnn(), method="ce", preset="cifar10-sym-0.5")
