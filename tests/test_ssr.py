"""SSR: its data (clean and all batches), its selection callback, and a short fit that learns.

The models are built as users build them, with `keras_sanm.wrap(base, method="ssr")`.
"""

import keras
import numpy as np
import pytest

import keras_sanm
from keras_sanm.data import IndexedDataset
from keras_sanm.methods.ssr.data import SSRData
from keras_sanm.methods.ssr.trainers import SANMSSRTrainer, SSRTrainer
from keras_sanm.training.callbacks import CosineEpochLearningRate
from keras_sanm.training.mixup import mix

from conftest import learnable_problem, small_cnn


def uint8_problem(n, seed):
    x, y = learnable_problem(n, size=32, seed=seed)
    return np.clip((x + 3.0) / 6.0 * 255.0, 0, 255).astype("uint8"), y


def make_model(sanm=False, **options):
    model = keras_sanm.wrap(small_cnn(input_shape=(32, 32, 3)), method="ssr", sanm=sanm,
                            seed=0, **{"k": 20, "batch_size": 32, **options})
    assert isinstance(model, SANMSSRTrainer if sanm else SSRTrainer)
    return model


def test_batches_hold_class_balanced_clean_samples_and_all_samples():
    x, y = uint8_problem(96, 0)
    data = SSRData(x, y, batch_size=16, num_classes=4, seed=0)
    clean = np.zeros(96, bool)
    clean[:40] = True  # the selection keeps the first 40, relabelled to class 0 or 1
    current = np.where(np.arange(96) < 10, 1, 0)
    data.set_selection(current, clean, np.linspace(0, 1, 96))
    batches = [data[i][0] for i in range(len(data))]
    assert len(data) == 6 and batches[0]["clean_views"].shape == (16, 2, 32, 32, 3)
    labels = np.concatenate([b["clean_labels"] for b in batches])
    # Class-balanced: both classes drawn about equally, though 30 of 40 are class 0.
    assert abs(int(np.sum(labels == 0)) - int(np.sum(labels == 1))) <= 16
    # Reading a batch again gives the same batch (Keras peeks at the first).
    np.testing.assert_array_equal(data[2][0]["all_views"], batches[2]["all_views"])
    # Its strong views differ from each other (two draws of the augmentation).
    assert not np.array_equal(batches[0]["clean_views"][:, 0], batches[0]["clean_views"][:, 1])
    # A resumed run continues with the same plan.
    state = data.get_state()
    other = SSRData(x, y, batch_size=16, num_classes=4, seed=5)
    other.set_state(state)
    np.testing.assert_array_equal(other[3][0]["clean_labels"], batches[3]["clean_labels"])


def test_cosine_schedule_decays_to_its_minimum_over_the_run():
    schedule = CosineEpochLearningRate(0.02, 4e-4, 300)
    assert schedule.rate(0) == pytest.approx(0.02)
    assert schedule.rate(150) == pytest.approx((0.02 + 4e-4) / 2)
    schedule.fit_to_run(10)
    assert schedule.rate(10) == pytest.approx(4e-4) and schedule.rate(5) == pytest.approx(0.0102)


@pytest.mark.slow
def test_short_ssr_fit_learns_and_its_selection_finds_wrong_labels():
    x, y = uint8_problem(384, 1)
    x_test, y_test = uint8_problem(200, 2)
    noisy = keras_sanm.data.inject_noise(y, 4, "sym", 0.4, seed=0)
    # A lower relabelling threshold than CIFAR's 0.9: after 4 epochs of mixup
    # this network's top probability stays below about 0.75, and the test
    # checks that relabelling helps.
    model = make_model(relabel_threshold=0.5)
    model.compile()
    # An IndexedDataset carries the true labels, so the selection is scored.
    data = IndexedDataset(x, noisy, 32, num_classes=4, clean_labels=y, seed=0)
    history = model.fit(data, epochs=5, verbose=0, validation_data=(x_test, y_test)).history
    assert history["val_accuracy"][-1] > 0.75, history["val_accuracy"]
    correct = float(np.mean(noisy == y))
    # The clean set is far cleaner than the labels, and the current labels
    # (relabelled where the network is confident) are more often right.
    assert history["clean_precision"][-1] > correct + 0.2, (history["clean_precision"], correct)
    assert history["relabelled_count"][-1] > 0 and history["label_accuracy"][-1] > correct
    assert history["consistency_loss"][-1] < history["consistency_loss"][0]
    assert history["learning_rate"][0] == pytest.approx(0.02)
    assert history["learning_rate"][-1] < history["learning_rate"][0]


@pytest.mark.slow
def test_ssr_saves_and_loads(tmp_path):
    x, y = uint8_problem(64, 3)
    model = make_model(augment=None)
    model.compile()
    model.fit(x, y, epochs=1, verbose=0)
    model.save(tmp_path / "ssr.keras")
    loaded = keras_sanm.load_model(str(tmp_path / "ssr.keras"))
    assert isinstance(loaded, SSRTrainer) and loaded.k == 20
    np.testing.assert_allclose(loaded.predict(x[:8], verbose=0), model.predict(x[:8], verbose=0),
                               rtol=1e-5, atol=1e-5)
    for variable, saved in zip(model.projector.weights, loaded.projector.weights):
        np.testing.assert_array_equal(keras.ops.convert_to_numpy(variable),
                                      keras.ops.convert_to_numpy(saved))


def test_ssr_refuses_a_network_without_a_feature_map():
    with pytest.raises(ValueError, match="feature map"):
        SSRTrainer(small_cnn(), 4)


@pytest.mark.slow
@pytest.mark.only_backend("torch", reason="SSR's step (above) and SANM's masking (every other "
                          "SANM method) are tested per backend; their sum once")
def test_sanm_ssr_masks_the_clean_samples_learns_saves_and_loads(tmp_path):
    x, y = uint8_problem(256, 1)
    x_test, y_test = uint8_problem(200, 2)
    noisy = keras_sanm.data.inject_noise(y, 4, "sym", 0.4, seed=0)
    model = make_model(sanm=True, relabel_threshold=0.5)
    assert model.refits_label_quality is False  # the selection score sizes the boxes
    model.compile()
    decoder_before = [keras.ops.convert_to_numpy(w).copy() for w in model.decoder.weights]
    data = IndexedDataset(x, noisy, 32, num_classes=4, clean_labels=y, seed=0)
    history = model.fit(data, epochs=4, verbose=0, validation_data=(x_test, y_test)).history
    assert history["val_accuracy"][-1] > 0.7, history["val_accuracy"]
    # The decoder trains on the masked copies' reconstruction.
    assert np.isfinite(history["reconstruction_loss"]).all()
    assert any(not np.array_equal(a, keras.ops.convert_to_numpy(w))
               for a, w in zip(decoder_before, model.decoder.weights))
    assert 0.02 <= history["mask_ratio"][-1] <= 0.10
    model.save(tmp_path / "sanm_ssr.keras")
    loaded = keras_sanm.load_model(str(tmp_path / "sanm_ssr.keras"))
    assert isinstance(loaded, SANMSSRTrainer)
    np.testing.assert_allclose(loaded.predict(x[:8], verbose=0), model.predict(x[:8], verbose=0),
                               rtol=1e-5, atol=1e-5)


def test_a_sanm_ssr_step_runs_on_every_backend():
    x, y = uint8_problem(32, 4)
    model = make_model(sanm=True, batch_size=16, k=8, augment=None)
    model.compile()
    history = model.fit(x, y, epochs=1, verbose=0).history
    assert np.isfinite(history["loss"][-1]) and history["reconstruction_loss"][-1] > 0
    assert 0.02 <= history["mask_ratio"][-1] <= 0.10


def test_ssr_loss_terms_are_the_official_formulas():
    """`L = L_ce(mixup of the 2B clean views) + lambda_fc L_fc`, recomputed in NumPy
    from the network's own outputs and the step's mixing draw."""
    x, y = uint8_problem(16, 5)
    model = make_model(batch_size=8, k=4, augment=None, consistency_weight=0.7)
    model.compile()
    data = model.training_data(x, y, None, False, verbose=0)
    data.set_selection(y, np.ones(16, bool), np.ones(16))
    batch = {name: keras.ops.convert_to_tensor(model.preprocessing(value))
             if name.endswith("views") else keras.ops.convert_to_tensor(value)
             for name, value in data[0][0].items()}
    state = [keras.ops.convert_to_numpy(v) for v in model.mix_seed.state.value]
    loss, logs = model.compute_train_loss((batch,), model.default_phase)
    model.mix_seed.state.assign(np.asarray(state))  # the same draw again
    inputs, targets, _ = model.clean_rows(batch)
    _, _, lam, order = mix(inputs, targets, model.alpha, model.mix_seed)
    lam, order = float(keras.ops.convert_to_numpy(lam)), keras.ops.convert_to_numpy(order)
    inputs, targets = keras.ops.convert_to_numpy(inputs), keras.ops.convert_to_numpy(targets)
    assert lam >= 0.5 and sorted(order) == list(range(16))
    mixed = lam * inputs + (1 - lam) * inputs[order]
    mixed_targets = lam * targets + (1 - lam) * targets[order]
    logits = keras.ops.convert_to_numpy(model.scores(mixed, training=True)).astype("float64")
    log_p = logits - logits.max(1, keepdims=True)
    log_p -= np.log(np.exp(log_p).sum(1, keepdims=True))
    classification = -np.mean(np.sum(mixed_targets * log_p, 1))

    def pooled(images):
        return model.pooled_features(images, training=True)[0]

    weak, strong = batch["all_views"][:, 0], batch["all_views"][:, 1]
    z = keras.ops.convert_to_numpy(model.projector(pooled(weak), training=True))
    p = keras.ops.convert_to_numpy(
        model.predictor(model.projector(pooled(strong), training=True), training=True))
    cosine = np.sum(p * z, 1) / (np.linalg.norm(p, axis=1) * np.linalg.norm(z, axis=1))
    consistency = -np.mean(cosine)
    logged = {k: float(keras.ops.convert_to_numpy(v)) for k, v in logs.items()}
    np.testing.assert_allclose(logged["classification_loss"], classification, rtol=1e-4)
    np.testing.assert_allclose(logged["consistency_loss"], consistency, rtol=1e-4, atol=1e-6)
    np.testing.assert_allclose(float(keras.ops.convert_to_numpy(loss)),
                               classification + 0.7 * consistency, rtol=1e-4)
