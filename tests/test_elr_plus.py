import keras
import numpy as np
import pytest
from keras import ops

import keras_sanm
from keras_sanm.data import IndexedDataset
from keras_sanm.methods.elr_plus.trainers import elr_regulariser, exponential_rampup

from conftest import learnable_problem, small_cnn


def numpy_values(variables):
    return [np.array(ops.convert_to_numpy(v)) for v in variables]


def softmax(z):
    z = z - z.max(axis=1, keepdims=True)
    e = np.exp(z)
    return e / e.sum(axis=1, keepdims=True)


def make_model(n=64, **options):
    options = {"num_samples": n, "seed": 0, "ema_step": 0, **options}
    model = keras_sanm.wrap(small_cnn(), method="elr_plus", sanm=False, **options)
    model.compile(optimizer=keras.optimizers.SGD(0.1), weight_decay=0.0)
    model.build()
    return model


def batch_of(model, data, indices):
    return model.make_batch(data, np.asarray(indices))


def test_target_buffer_update_uses_momentum_indices_and_the_peers_average(problem):
    x, y = problem
    x, y = x[:64], y[:64]
    model = make_model(beta=0.7)
    data = model.training_data(IndexedDataset(x, y, 16, augment=None, shuffle=False), None)
    indices = np.array([3, 10, 17, 40, 41, 50, 60, 63, 0, 1, 2, 5, 6, 7, 8, 9])
    batch = batch_of(model, data, indices)

    def peer_average_probabilities():
        # Network 2's averaged copy, training mode: equal to network 2 until it trains.
        net = model.networks[1]
        out, _ = net.stateless_call(
            [v.value for v in model._held.averages[1]],
            [v.value for v in net.non_trainable_variables], batch["images"], training=True)
        return softmax(np.asarray(ops.convert_to_numpy(out), "float64"))

    p1 = peer_average_probabilities()
    model.train_phase_on_batch(("train", 0), batch)
    targets = ops.convert_to_numpy(model.ensemble_targets)
    np.testing.assert_allclose(targets[0, indices], 0.3 * p1, atol=1e-5)
    others = np.setdiff1d(np.arange(64), indices)
    assert np.all(targets[0, others] == 0) and np.all(targets[1] == 0)
    # Second visit: t <- 0.7 t + 0.3 p_hat (network 2 has not trained, its average is unchanged).
    p2 = peer_average_probabilities()
    model.train_phase_on_batch(("train", 0), batch)
    targets2 = ops.convert_to_numpy(model.ensemble_targets)
    np.testing.assert_allclose(targets2[0, indices], 0.7 * 0.3 * p1 + 0.3 * p2, atol=1e-5)
    np.testing.assert_allclose(targets2[0, indices].sum(1), 0.51, atol=1e-5)


def test_step_trains_one_network_and_moves_only_its_average(problem):
    x, y = problem
    model = make_model(n=64, ema_decay=0.9)
    data = model.training_data(IndexedDataset(x[:64], y[:64], 16, augment=None), None)
    batch = batch_of(model, data, np.arange(16))
    for k in (0, 1):
        nets = [numpy_values(net.trainable_variables) for net in model.networks]
        averages = [numpy_values(a) for a in model._held.averages]
        model.train_phase_on_batch(("train", k), batch)
        nets_after = [numpy_values(net.trainable_variables) for net in model.networks]
        averages_after = [numpy_values(a) for a in model._held.averages]
        for j in (0, 1):
            moved = any(not np.array_equal(a, b) for a, b in zip(nets[j], nets_after[j]))
            assert moved == (j == k)
            if j == k:  # average <- 0.9 average + 0.1 weights (ema_step=0: no ramp)
                for avg, avg_new, new in zip(averages[j], averages_after[j], nets_after[j]):
                    np.testing.assert_allclose(avg_new, 0.9 * avg + 0.1 * new, atol=1e-6)
            else:
                assert all(np.array_equal(a, b) for a, b in zip(averages[j], averages_after[j]))
    np.testing.assert_array_equal(ops.convert_to_numpy(model.step_counts), [1, 1])


def test_elr_term_and_rampups():
    t = np.array([[0.9, 0.1], [0.2, 0.8]], "float32")
    logits = np.array([[2.0, 0.0], [0.0, 1.0]], "float32")
    p = np.clip(softmax(logits.astype("float64")), 1e-4, 1 - 1e-4)
    expected = np.mean(np.log(1 - (t * p).sum(1)))
    assert float(ops.convert_to_numpy(elr_regulariser(logits, t))) == pytest.approx(expected, rel=1e-5)
    assert float(ops.convert_to_numpy(exponential_rampup(5.0, 0))) == 1.0
    assert float(ops.convert_to_numpy(exponential_rampup(0.0, 100))) == pytest.approx(np.exp(-5))
    assert float(ops.convert_to_numpy(exponential_rampup(200.0, 100))) == pytest.approx(1.0)


def test_targets_are_saved_and_restored_with_the_model(problem, tmp_path):
    x, y = problem
    model = make_model()
    model.fit(x[:64], y[:64], batch_size=16, epochs=1, verbose=0)
    targets = ops.convert_to_numpy(model.ensemble_targets)
    assert targets.any()
    path = str(tmp_path / "elr.weights.h5")
    model.save_weights(path)
    fresh = make_model()
    fresh.load_weights(path)
    np.testing.assert_array_equal(ops.convert_to_numpy(fresh.ensemble_targets), targets)
    for a, b in zip(model._held.averages[0], fresh._held.averages[0]):
        np.testing.assert_array_equal(ops.convert_to_numpy(a), ops.convert_to_numpy(b))


def test_sanm_elr_plus_trains_networks_decoders_and_logs_its_terms(problem):
    x, y = problem
    model = keras_sanm.wrap(small_cnn(), method="elr_plus", num_samples=64, seed=0)
    model.compile(optimizer=keras.optimizers.SGD(0.1))
    before = numpy_values(model.trainable_variables)
    history = model.fit(x[:64], y[:64], batch_size=16, epochs=2, verbose=0).history
    after = numpy_values(model.trainable_variables)
    assert all(not np.array_equal(a, b) for a, b in zip(before, after))
    for key in ("reconstruction_loss", "mask_ratio", "elr_loss", "classification_loss"):
        assert np.all(np.isfinite(history[key])), key
    assert 0.02 <= history["mask_ratio"][0] <= 0.1
    assert "label_quality" in history


@pytest.mark.slow
def test_short_elr_plus_fit_learns():
    x, y = learnable_problem(n=384, seed=1)
    x_test, y_test = learnable_problem(n=200, seed=2)
    noisy = keras_sanm.data.inject_noise(y, 4, "sym", 0.2, seed=0)
    for sanm in (False, True):
        model = keras_sanm.wrap(small_cnn(), method="elr_plus", sanm=sanm, seed=0,
                                num_samples=384)
        model.compile(optimizer=keras.optimizers.SGD(0.05, momentum=0.9))
        data = IndexedDataset(x, noisy, 32, augment=None, seed=0)
        model.fit(data, epochs=4, verbose=0)
        acc = model.evaluate(x_test, y_test, verbose=0, return_dict=True)["accuracy"]
        assert acc > 0.7, (sanm, acc)


def test_elr_plus_errors(problem):
    x, y = problem
    with pytest.raises(ValueError, match="num_samples must be a positive integer"):
        keras_sanm.wrap(small_cnn(), method="elr_plus", sanm=False, num_samples=0)
    model = make_model(n=64)
    with pytest.raises(ValueError, match="num_samples=64"):
        model.fit(x[:32], y[:32], batch_size=16, verbose=0)
    with pytest.raises(ValueError, match="trains on images"):
        model.fit([x[:64]], y[:64], verbose=0)


def test_elr_plus_sizes_its_sample_state_at_the_first_fit(problem, tmp_path, capsys):
    x, y = problem
    lazy = keras_sanm.wrap(small_cnn(), method="elr_plus", sanm=False, seed=0, ema_step=0)
    lazy.compile()
    lazy.fit(x[:64], y[:64], batch_size=16, epochs=1, verbose=2)
    assert lazy.num_samples == 64 and "num_samples=64" in capsys.readouterr().out
    assert tuple(lazy.ensemble_targets.shape) == (2, 64, 4)
    assert float(np.abs(keras.ops.convert_to_numpy(lazy.ensemble_targets)).sum()) > 0
    # The same variables in the same order as a model given num_samples.
    eager = keras_sanm.wrap(small_cnn(), method="elr_plus", sanm=False, seed=0, ema_step=0,
                            num_samples=64)
    assert [tuple(v.shape) for v in eager.weights] == [tuple(v.shape) for v in lazy.weights]
    path = str(tmp_path / "elr.keras")
    lazy.save(path)
    loaded = keras_sanm.load_model(path)
    np.testing.assert_allclose(keras.ops.convert_to_numpy(loaded.ensemble_targets),
                               keras.ops.convert_to_numpy(lazy.ensemble_targets))
    with pytest.raises(ValueError, match="num_samples=64"):
        lazy.fit(x[:32], y[:32], batch_size=16, verbose=0)


@pytest.mark.parametrize("sanm", [False, True], ids=["elr_plus", "sanm_elr_plus"])
def test_step_forwards_only_the_rows_its_algorithm_needs(problem, monkeypatch, sanm):
    """The network passes of one step, as (whose, network, rows), in order.

    ELR+: the peer's weight average on the B un-mixed rows (its targets),
    then network k on the B mixed rows. SANM(ELR+) adds network k on the B
    un-mixed rows (its own feature map places the boxes; no gradient), on
    the 2B masked copies (their feature maps feed the decoder) and on the
    3B mixed pool instead of B: 6B rows of network k against ELR+'s B. No
    pass is repeated and none is shared (docs/benchmarks.md, "SANM(ELR+)'s
    passes").
    """
    x, y = problem
    x, y = x[:64], y[:64]
    model = keras_sanm.wrap(small_cnn(), method="elr_plus", sanm=sanm, num_samples=64,
                            seed=0, ema_step=0)
    model.compile(optimizer=keras.optimizers.SGD(0.1))
    model.build()
    data = model.training_data(IndexedDataset(x, y, 16, augment=None, shuffle=False), None)
    calls = []
    trainer = type(model)
    network_scores, averaged_scores = trainer.network_scores, trainer.averaged_scores

    def counted_network_scores(self, k, images, training):
        calls.append(("network", k, int(images.shape[0])))
        return network_scores(self, k, images, training)

    def counted_averaged_scores(self, k, images):
        calls.append(("average", k, int(images.shape[0])))
        return averaged_scores(self, k, images)

    monkeypatch.setattr(trainer, "network_scores", counted_network_scores)
    monkeypatch.setattr(trainer, "averaged_scores", counted_averaged_scores)
    model.train_phase_on_batch(("train", 1), batch_of(model, data, np.arange(16)))
    rows = [16, 32, 48] if sanm else [16]
    assert calls == [("average", 0, 16)] + [("network", 1, r) for r in rows]
