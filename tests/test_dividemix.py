"""DivideMix and SANM(DivideMix): division, batches, targets, training, label quality."""

import keras
import numpy as np
import pytest
from keras import ops

import keras_sanm
from keras_sanm.data import CoDivideData, weak_augment
from keras_sanm.methods.dividemix.mixmatch import mixmatch_losses, rampup_weight
from keras_sanm.methods.dividemix.trainers import sanm_mixmatch_groups
from keras_sanm.training.mixup import mix
from keras_sanm.training.optimizers import NetworkOptimizers
from keras_sanm.training.phases import Phase
from keras_sanm.training.refinement import co_refine, sharpen

from conftest import learnable_problem, small_cnn


def noisy_problem(n=256, rate=0.3, seed=1):
    """The learnable problem with a `rate` share of labels changed to a wrong class."""
    x, y = learnable_problem(n=n)
    rng = np.random.default_rng(seed)
    noisy = y.copy()
    flip = rng.random(n) < rate
    noisy[flip] = (y[flip] + rng.integers(1, 4, flip.sum())) % 4
    return x, y, noisy


def to_uint8(x):
    return np.clip((x - x.min()) / (x.max() - x.min()) * 255, 0, 255).astype("uint8")


class PhaseRecorder(keras.callbacks.Callback):
    def __init__(self):
        super().__init__()
        self.epoch, self.phases = 0, {}

    def on_epoch_begin(self, epoch, logs=None):
        self.epoch = epoch
        self.phases[epoch] = []

    def on_train_batch_end(self, batch, logs=None):
        self.phases[self.epoch].append(self.model.phase)


@pytest.fixture(scope="module")
def trained():
    """Plain DivideMix: 2 warm-up epochs, then 3 epochs of division."""
    keras.utils.set_random_seed(0)
    x, y, noisy = noisy_problem()
    model = keras_sanm.wrap(
        small_cnn(), method="dividemix", sanm=False, seed=0, warmup_epochs=2, batch_size=32
    )
    model.compile(optimizer=keras.optimizers.SGD(0.05, momentum=0.9))
    # The crop and flip as a callable, which takes the images as given: its
    # padding is 0, these pictures' mean colour. The named "weak" view pads
    # standardised images with their black (tests/test_input_scales.py), which
    # in these pictures is the colour of a class; these tests are about the
    # division, not the padding.
    data = CoDivideData(x, noisy, batch_size=32, clean_labels=y, seed=0,
                        views=(weak_augment, weak_augment), warmup_augment=weak_augment)
    recorder = PhaseRecorder()
    history = model.fit(
        data, epochs=5, verbose=0, callbacks=[recorder], validation_data=(x, y)
    )
    return model, history.history, recorder.phases, (x, y, noisy), data


@pytest.mark.slow
def test_warmup_then_division_at_the_right_epoch(trained):
    _, history, phases, _, data = trained
    for epoch in (0, 1):  # warm-up: network 1's pass, then network 2's
        steps = len(data) // data.warmup_batch_size
        assert phases[epoch] == [("warmup", 0)] * steps + [("warmup", 1)] * steps
    for epoch in (2, 3, 4):
        kinds = phases[epoch]
        first = kinds.index(("train", 1))
        assert set(kinds[:first]) == {("train", 0)} and set(kinds[first:]) == {("train", 1)}
    # Same keys every epoch; the other phase's terms are NaN.
    assert np.all(np.isfinite(history["accuracy"][:2])) and np.all(np.isnan(history["accuracy"][2:]))
    for name in ("labeled_loss", "labeled_1", "noise_auc_2"):
        assert np.all(np.isnan(history[name][:2])) and np.all(np.isfinite(history[name][2:]))


def test_gmm_split_separates_clean_from_noisy(trained):
    _, history, _, _, _ = trained
    assert min(history["noise_auc_1"][2:]) > 0.8 and min(history["noise_auc_2"][2:]) > 0.8
    assert history["clean_precision_1"][-1] > 0.85


def test_short_fit_learns(trained):
    _, history, _, _, _ = trained
    assert max(history["val_accuracy"]) > 0.8  # chance is 0.25, 30% labels wrong


def test_label_quality_and_find_label_issues_rank_planted_errors(trained):
    model, _, _, (x, y, noisy), _ = trained
    quality = model.label_quality(x, noisy)
    assert quality.shape == (len(x),) and quality.dtype == np.float32
    assert np.all((quality >= 0) & (quality <= 1))
    planted = np.flatnonzero(noisy != y)
    issues = keras_sanm.find_label_issues(model, x, noisy)
    ranked = keras_sanm.find_label_issues(model, x, noisy, threshold=None)
    assert sorted(ranked.tolist()) == list(range(len(x)))
    top = ranked[: len(planted) // 2]
    assert np.isin(top, planted).mean() > 0.9
    assert np.isin(planted, issues).mean() > 0.7
    with pytest.raises(ValueError, match="labels"):
        model.label_quality(x, noisy[:-1])


def test_split_and_batch_composition_follow_the_peer():
    x, y, noisy = noisy_problem(n=100)
    data = CoDivideData(x, noisy, batch_size=16, seed=0)
    rng = np.random.default_rng(0)
    data.label_quality[:] = rng.random((100, 2))  # samples x networks
    for k in (0, 1):
        peer = data.label_quality[:, 1 - k]
        labeled, unlabeled = data.split(k, 0.5)
        assert np.all(peer[labeled] > 0.5) and np.all(peer[unlabeled] <= 0.5)
        plan = data.training_plan(k, 0.5, epoch=3)
        assert len(plan) == -(-len(labeled) // 16)
        assert set(np.concatenate([p[0] for p in plan])) == set(labeled)
        assert set(np.concatenate([p[1] for p in plan])) <= set(unlabeled)
        assert [p[2] for p in plan] == [3 + i / (len(labeled) // 16 + 1) for i in range(len(plan))]
        batch = data.training_batch(k, plan[0])
        assert batch["labeled_views"].shape == (16, 2) + x.shape[1:]
        assert batch["unlabeled_views"].shape == (16, 2) + x.shape[1:]
        np.testing.assert_array_equal(batch["labels"], noisy[plan[0][0]])
        np.testing.assert_allclose(batch["labeled_quality"], peer[plan[0][0]])
        np.testing.assert_allclose(batch["unlabeled_quality"], peer[plan[0][1]])


def test_batch_larger_than_the_data_is_refused():
    # Empty splits are tested in test_validation.py.
    x, _, noisy = noisy_problem(n=40)
    with pytest.raises(ValueError, match="batch_size"):
        CoDivideData(x, noisy, batch_size=64)


@pytest.mark.filterwarnings("ignore:Epoch 20. network 2's peer")  # its empty split, on purpose
def test_co_divide_crosses_and_trains_only_one_network():
    x, _, noisy = noisy_problem(n=96)
    model = keras_sanm.wrap(small_cnn(), method="dividemix", sanm=False, seed=0, batch_size=16)
    model.compile()
    data = CoDivideData(x, noisy, batch_size=16, seed=0)
    data.label_quality[:, 0] = 0.0  # network 1's own view: everything noisy
    data.label_quality[:, 1] = np.linspace(0, 1, 96)  # network 2's view
    plan = data.training_plan(0, 0.5, epoch=20)
    labeled = np.concatenate([p[0] for p in plan])
    assert np.all(data.label_quality[labeled, 1] > 0.5)  # network 1 uses network 2's split
    model.build()

    def snapshot():
        nets = [[ops.convert_to_numpy(v) for v in net.weights] for net in model.networks]
        opts = [[ops.convert_to_numpy(v) for v in o.variables] for o in model.optimizer.optimizers]
        return nets, opts

    for k in (0, 1, 0):  # each phase trains its own network, with its own optimizer
        (nets_before, opts_before) = snapshot()
        model.train_phase_on_batch(
            ("train", k), data.training_batch(k, data.training_plan(k, 0.5, 20)[0]))
        nets_after, opts_after = snapshot()
        changed = [any(not np.allclose(a, b) for a, b in zip(nets_before[j], nets_after[j]))
                   for j in (0, 1)]
        assert changed == [k == 0, k == 1]
        moved = [any(not np.array_equal(a, b) for a, b in zip(opts_before[j], opts_after[j]))
                 for j in (0, 1)]
        assert moved == [k == 0, k == 1]


def test_targets_are_distributions():
    rng = np.random.default_rng(0)
    p = rng.dirichlet(np.ones(5), 8).astype("float32")
    sharp = ops.convert_to_numpy(sharpen(p, 0.5))
    np.testing.assert_allclose(sharp.sum(-1), 1.0, rtol=1e-5)
    assert np.all(sharp.max(-1) >= p.max(-1) - 1e-6)  # sharpening never flattens
    one_hot = np.eye(5, dtype="float32")[rng.integers(0, 5, 8)]
    w = rng.random(8).astype("float32")
    refined = ops.convert_to_numpy(co_refine(p, one_hot, w, 0.5))
    np.testing.assert_allclose(refined.sum(-1), 1.0, rtol=1e-5)
    expected = (w[:, None] * one_hot + (1 - w[:, None]) * p) ** 2
    np.testing.assert_allclose(refined, expected / expected.sum(-1, keepdims=True), rtol=1e-4)
    inputs = rng.normal(size=(8, 4, 4, 3)).astype("float32")
    mixed_x, mixed_y, lam, _ = mix(inputs, refined, 4.0, keras.random.SeedGenerator(0))
    lam = float(lam)
    assert 0.5 <= lam <= 1.0
    np.testing.assert_allclose(ops.convert_to_numpy(mixed_y).sum(-1), 1.0, rtol=1e-5)
    # Each mixed row is lam * row + (1 - lam) * some row (one permutation).
    partner = (ops.convert_to_numpy(mixed_x) - lam * inputs) / (1 - lam)
    matches = [np.argmin(((inputs - r) ** 2).sum(axis=(1, 2, 3))) for r in partner]
    assert sorted(matches) == list(range(8))
    assert float(rampup_weight(12.0, 10, 25.0)) == pytest.approx(25.0 * 2 / 16)
    assert float(rampup_weight(40.0, 10, 25.0)) == pytest.approx(25.0)


def test_twelve_group_layout_and_loss_split():
    b, c = 3, 4
    views = [np.full((b, 2, 2, 1), i, "float32") for i in range(8)]
    peak = np.concatenate([np.full((b, 2, 2, 1), 10, "float32"), np.full((b, 2, 2, 1), 20, "float32")])
    valley = peak + 1
    t_x = np.eye(c, dtype="float32")[[0, 1, 2]]
    t_u = np.eye(c, dtype="float32")[[3, 3, 3]]
    modulated = np.full((2 * b, c), 0.25, "float32")
    inputs, targets = sanm_mixmatch_groups(views[:4], views[4:], peak, valley, t_x, t_u, modulated)
    inputs, targets = ops.convert_to_numpy(inputs), ops.convert_to_numpy(targets)
    assert inputs.shape[0] == 12 * b
    group_value = inputs[::b, 0, 0, 0].tolist()
    assert group_value == [0, 1, 2, 3, 10, 11, 4, 5, 6, 7, 20, 21]
    for g, expected in enumerate([t_x] * 4 + [modulated[:b]] * 2 + [t_u] * 4 + [modulated[b:]] * 2):
        np.testing.assert_array_equal(targets[g * b : (g + 1) * b], expected)
    logits = np.random.default_rng(0).normal(size=(12 * b, c)).astype("float32")
    lx, lu, prior = [float(v) for v in mixmatch_losses(logits, targets, 6 * b)]
    changed = targets.copy()
    changed[6 * b :] = 0.25
    lx2, lu2, _ = [float(v) for v in mixmatch_losses(logits, changed, 6 * b)]
    assert lx2 == pytest.approx(lx) and lu2 != pytest.approx(lu)
    probs = np.exp(logits) / np.exp(logits).sum(-1, keepdims=True)
    assert prior == pytest.approx(np.sum(0.25 * np.log(0.25 / probs.mean(0))), rel=1e-4)


@pytest.mark.slow
def test_sanm_dividemix_trains_both_networks_and_decoders():
    x, y, noisy = noisy_problem(n=96)
    images = to_uint8(x)
    model = keras_sanm.wrap(
        small_cnn(), method="dividemix", seed=0, warmup_epochs=1, batch_size=16
    )
    model.compile(optimizer=keras.optimizers.SGD(0.05, momentum=0.9))
    data = CoDivideData(images, noisy, batch_size=16, clean_labels=y, seed=0,
                        views=model.views, warmup_augment=model.warmup_augment)
    decoders_before = [[ops.convert_to_numpy(v) for v in d.weights] for d in model.decoders]
    history = model.fit(data, epochs=2, verbose=0).history
    for name in ("reconstruction_loss", "mask_ratio", "labeled_loss", "unlabeled_loss", "labeled_1"):
        assert len(history[name]) == 2 and np.isnan(history[name][0])
        assert np.isfinite(history[name][1])
    assert 0.02 <= history["mask_ratio"][1] <= 0.1
    for before, decoder in zip(decoders_before, model.decoders):
        after = [ops.convert_to_numpy(v) for v in decoder.weights]
        assert any(not np.allclose(a, b) for a, b in zip(before, after))
    assert model.predict(images[:5], verbose=0).shape == (5, 4)


def test_fit_refuses_unknown_inputs_and_arguments():
    x, _, noisy = noisy_problem(n=64)
    model = keras_sanm.wrap(small_cnn(), method="dividemix", sanm=False, batch_size=16)
    with pytest.raises(ValueError, match="trains on images"):
        model.fit([x], noisy)
    with pytest.raises(ValueError, match="steps_per_epoch"):
        model.fit(x, noisy, steps_per_epoch=3)
    with pytest.raises(ValueError, match="labels"):
        model.fit(x, noisy[:10])
    with pytest.raises(ValueError, match="steps_per_execution"):
        model.compile(steps_per_execution=4)


def test_a_callback_stops_training_mid_epoch():
    """As in Keras' own loop (e.g. `TerminateOnNaN`): `stop_training` set after a
    batch ends the fit before the next batch."""
    x, _, noisy = noisy_problem(n=128)

    class StopAfter(keras.callbacks.Callback):
        batches = 0

        def on_train_batch_end(self, batch, logs=None):
            StopAfter.batches += 1
            if StopAfter.batches == 3:
                self.model.stop_training = True

    model = keras_sanm.wrap(small_cnn(), method="dividemix", sanm=False, batch_size=16,
                            warmup_epochs=1)
    history = model.fit(x, noisy, epochs=3, verbose=0, callbacks=[StopAfter()]).history
    assert StopAfter.batches == 3 and len(history["loss"]) == 1


def test_validation_data_as_a_dataset():
    x, y, noisy = noisy_problem(n=64)
    model = keras_sanm.wrap(small_cnn(), method="dividemix", sanm=False, batch_size=16)

    class Validation(keras.utils.PyDataset):
        def __len__(self):
            return 2

        def __getitem__(self, i):
            return x[32 * i : 32 * (i + 1)], y[32 * i : 32 * (i + 1)]

    history = model.fit(x, noisy, epochs=2, verbose=0, validation_data=Validation()).history
    # Both networks' mean prediction on the dataset's batches, as predict gives it.
    by_hand = np.mean(np.argmax(model.predict(x, verbose=0), -1) == y)
    assert history["val_accuracy"][-1] == pytest.approx(by_hand, abs=1e-6)
    assert model.evaluate(Validation(), verbose=0, return_dict=True)["accuracy"] == (
        pytest.approx(by_hand, abs=1e-6))
    # The default schedule's drop (150 of 301 epochs) moved to half of this fit.
    np.testing.assert_allclose(history["learning_rate"], [0.02, 0.002])


def test_presets_set_the_reference_values():
    model = keras_sanm.wrap(small_cnn(), method="dividemix", preset="cifar10-sym-0.9")
    assert (model.threshold, model.lambda_u, model.history_length) == (0.6, 50.0, 5)
    assert (model.warmup_epochs, model.epochs, model.warmup_clip_norm) == (10, 361, 1.0)
    plain = keras_sanm.wrap(small_cnn(), method="dividemix", sanm=False,
                            preset="cifar100-asym-0.4", lambda_u=3.0)
    assert (plain.lambda_u, plain.warmup_epochs, plain.epochs) == (3.0, 30, 301)
    assert plain.use_confidence_penalty and plain.warmup_clip_norm is None
    with pytest.raises(ValueError, match="Unknown preset"):
        keras_sanm.wrap(small_cnn(), method="dividemix", preset="cifar10-sym-0.3")
    with pytest.raises(ValueError, match="dividemix"):
        keras_sanm.wrap(small_cnn(), method="ce", preset="cifar10-sym-0.5")


def test_double_softmax_and_encoder_weights(tmp_path):
    source = small_cnn()
    encoder = keras.Model(source.inputs, source.get_layer("relu2").output)
    path = str(tmp_path / "encoder.weights.h5")
    encoder.save_weights(path)
    model = keras_sanm.wrap(small_cnn(), method="dividemix", double_softmax=True,
                            encoder_weights=path, feature_layer="relu2")
    assert model.from_logits
    for net in model.networks:
        for name in ("conv1", "conv2"):
            np.testing.assert_array_equal(
                ops.convert_to_numpy(net.get_layer(name).kernel),
                ops.convert_to_numpy(source.get_layer(name).kernel),
            )
        out = ops.convert_to_numpy(net(np.zeros((2, 16, 16, 3), "float32"))[1])
        np.testing.assert_allclose(out.sum(-1), 1.0, rtol=1e-5)


def test_network_optimizers_errors():
    sgd = keras.optimizers.SGD()
    with pytest.raises(ValueError, match="own optimizer"):
        NetworkOptimizers([sgd, sgd])
    opt = NetworkOptimizers([keras.optimizers.SGD(), keras.optimizers.SGD()])
    a, b = keras.Variable(np.ones(2)), keras.Variable(np.ones(2))
    opt.assign_groups([[a], []])
    with pytest.raises(ValueError, match="no network"):
        opt.build([a, b])


@pytest.mark.parametrize("alpha", [4.0, 0.5])
def test_beta_sampler_matches_the_beta_distribution(alpha):
    from scipy import stats

    from keras_sanm.training.mixup import beta_sample, random_permutation

    seed = keras.random.SeedGenerator(1)
    draws = np.array([float(beta_sample(alpha, alpha, seed)) for _ in range(400)])
    assert stats.kstest(draws, stats.beta(alpha, alpha).cdf).pvalue > 0.01
    assert abs(draws.var() - 1 / (4 * (2 * alpha + 1))) < 0.02
    order = ops.convert_to_numpy(random_permutation(7, seed))
    assert sorted(order.tolist()) == list(range(7))


@pytest.mark.slow
@pytest.mark.only_backend("tensorflow", reason="XLA compilation is an option on TensorFlow; "
                          "on JAX every step of the suite runs compiled")
def test_xla_compiled_sanm_dividemix_steps():
    x, y, noisy = noisy_problem(n=64)
    histories = []
    for jit_compile in (True, False):  # the XLA steps compute what the plain ones do
        keras.utils.set_random_seed(0)
        model = keras_sanm.wrap(small_cnn(), method="dividemix", seed=0, warmup_epochs=1,
                                batch_size=16)
        model.compile(jit_compile=jit_compile)
        assert model.jit_compile is jit_compile
        data = CoDivideData(to_uint8(x), noisy, batch_size=16, seed=0, views=("weak",) * 6)
        histories.append(model.fit(data, epochs=2, verbose=0).history)
    # Warm-up, then the co-divided SANM epoch: the same split and losses.
    # (TensorFlow's XLA kernels draw other random numbers from the same seeds,
    # MixMatch's mixing weights and the mask sizes; JAX's draw the same.)
    rtol = 5e-2 if keras.backend.backend() == "tensorflow" else 2e-3
    np.testing.assert_allclose(histories[0]["loss"][0], histories[1]["loss"][0], rtol=2e-3)
    assert histories[0]["labeled_1"][1] == histories[1]["labeled_1"][1]
    for name in ("loss", "labeled_loss", "reconstruction_loss"):
        np.testing.assert_allclose(histories[0][name][1:], histories[1][name][1:], rtol=rtol)


def _division_batch(b=8, views=2, size=16, seed=0):
    rng = np.random.default_rng(seed)
    return {
        "labeled_views": rng.normal(size=(b, views, size, size, 3)).astype("float32"),
        "labels": rng.integers(0, 4, b).astype("int32"),
        "labeled_quality": rng.uniform(0.5, 1.0, b).astype("float32"),
        "unlabeled_views": rng.normal(size=(b, views, size, size, 3)).astype("float32"),
        "unlabeled_quality": rng.uniform(0.0, 0.5, b).astype("float32"),
        "progress": np.array([12.0], "float32"),
    }


def test_sanm_dividemix_with_every_part_off_is_dividemix():
    base = small_cnn()
    plain = keras_sanm.wrap(base, method="dividemix", sanm=False, seed=0, warmup_epochs=10)
    ablated = keras_sanm.wrap(base, method="dividemix", seed=0, warmup_epochs=10,
                              strong_views=False, strong_warmup=False, masking=False)
    ablated.networks[1].set_weights(plain.networks[1].get_weights())
    assert ablated.views == plain.views == ("weak", "weak")
    assert ablated.warmup_augment == "weak" and ablated.warmup_clip_norm is None
    batch = _division_batch()
    results = []
    for model in (plain, ablated):
        loss, logs = model.compute_train_loss((batch,), Phase("train", 0))
        results.append((float(ops.convert_to_numpy(loss)), sorted(logs)))
    assert results[0][0] == pytest.approx(results[1][0], rel=1e-5)
    assert results[0][1] == results[1][1]  # no reconstruction or mask terms
    # Masking on DivideMix's own views adds the reconstruction loss and the masked groups.
    masked = keras_sanm.wrap(base, method="dividemix", seed=0, warmup_epochs=10,
                             strong_views=False, strong_warmup=False)
    masked.networks[1].set_weights(plain.networks[1].get_weights())
    loss, logs = masked.compute_train_loss((batch,), Phase("train", 0))
    assert {"reconstruction_loss", "mask_ratio"} <= set(logs)
    assert float(ops.convert_to_numpy(loss)) != pytest.approx(results[0][0], rel=1e-3)


def test_sanm_dividemix_ablation_switches_and_config():
    full = keras_sanm.wrap(small_cnn(), method="dividemix")
    assert len(full.views) == 6 and full.warmup_augment == "strong_warmup"
    assert full.warmup_clip_norm == 1.0 and full.masking
    views_off = keras_sanm.wrap(small_cnn(), method="dividemix", strong_views=False)
    assert views_off.views == ("weak", "weak") and views_off.warmup_augment == "strong_warmup"
    warmup_off = keras_sanm.wrap(small_cnn(), method="dividemix", strong_warmup=False)
    assert len(warmup_off.views) == 6 and warmup_off.warmup_clip_norm is None
    restored = type(views_off).from_config(views_off.get_config())
    assert (restored.strong_views, restored.strong_warmup, restored.masking) == (False, True, True)


@pytest.mark.slow
def test_masking_on_weak_views_trains():
    x, y, noisy = noisy_problem(n=96)
    model = keras_sanm.wrap(small_cnn(), method="dividemix", seed=0, warmup_epochs=1,
                            batch_size=16, strong_views=False, strong_warmup=False)
    model.compile(optimizer=keras.optimizers.SGD(0.05, momentum=0.9))
    history = model.fit(to_uint8(x), noisy, epochs=2, verbose=0).history
    assert np.isnan(history["mask_ratio"][0]) and 0.0 < history["mask_ratio"][1] < 0.2
    assert np.isfinite(history["reconstruction_loss"][1]) and np.isfinite(history["labeled_loss"][1])
