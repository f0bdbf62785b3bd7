import keras
import numpy as np
import pytest

import keras_sanm
from keras_sanm.data import IndexedDataset
from keras_sanm.training.phases import TRAIN

from conftest import learnable_problem, small_cnn


def values(variables):
    return [np.array(keras.ops.convert_to_numpy(v)) for v in variables]


@pytest.mark.parametrize("sanm", [False, True])
def test_one_step_changes_weights(sanm, problem):
    x, y = problem
    model = keras_sanm.wrap(small_cnn(), sanm=sanm, seed=0)
    model.compile()
    before = values(model.trainable_variables)
    model.fit(x[:32], y[:32], batch_size=32, epochs=1, verbose=0)
    after = values(model.trainable_variables)
    changed = [not np.array_equal(a, b) for a, b in zip(before, after)]
    assert all(changed), "every trainable variable (network and decoder) must move"
    if sanm:
        decoder_ids = {id(v) for v in model.decoder.trainable_variables}
        assert decoder_ids and decoder_ids <= {id(v) for v in model.trainable_variables}


def test_sanm_loss_parts_logged_and_decrease(problem):
    x, y = problem
    model = keras_sanm.wrap(small_cnn(), seed=0)
    model.compile(optimizer=keras.optimizers.SGD(0.05, momentum=0.9))
    history = model.fit(x, y, batch_size=32, epochs=4, verbose=0).history
    for key in ("loss", "classification_loss", "reconstruction_loss", "mask_ratio", "accuracy"):
        assert len(history[key]) == 4
    assert history["loss"][-1] < history["loss"][0]
    assert 0.02 <= history["mask_ratio"][0] <= 0.10
    loss = history["loss"][-1]
    expected = history["classification_loss"][-1] + 0.02 * history["reconstruction_loss"][-1]
    assert loss == pytest.approx(expected, rel=1e-3)
    # The classification loss is the mean over [x; m+; m-]: one third clean, two thirds masked.
    parts = (history["clean_loss"][-1] + 2 * history["masked_loss"][-1]) / 3
    assert history["classification_loss"][-1] == pytest.approx(parts, rel=1e-4)
    assert "label_quality" in history and "clean_fraction" in history


@pytest.mark.slow
def test_short_sanm_fit_learns_with_noisy_labels():
    x, y = learnable_problem(n=384, seed=1)
    x_test, y_test = learnable_problem(n=200, seed=2)
    noisy = keras_sanm.data.inject_noise(y, 4, "sym", 0.2, seed=0)
    model = keras_sanm.wrap(small_cnn(), seed=0)
    model.compile(optimizer=keras.optimizers.SGD(0.05, momentum=0.9))
    model.fit(x, noisy, batch_size=32, epochs=6, verbose=0)
    scores = model.predict(x_test, verbose=0)
    assert scores.shape == (200, 4)
    acc = model.evaluate(x_test, y_test, verbose=0, return_dict=True)["accuracy"]
    assert acc > 0.8, acc  # chance is 0.25
    assert np.mean(scores.argmax(1) == y_test) == pytest.approx(acc, abs=1e-6)


@pytest.mark.slow
def test_label_quality_updates_from_epoch_one_and_flags_noisy_samples():
    x, y = learnable_problem(n=256, seed=3)
    noisy = keras_sanm.data.inject_noise(y, 4, "sym", 0.5, seed=1, include_true_class=False)
    data = IndexedDataset(x, noisy, 32, 4, augment=None, seed=0, clean_labels=y)
    model = keras_sanm.wrap(small_cnn(), seed=0)
    model.compile(optimizer=keras.optimizers.SGD(0.05, momentum=0.9))
    model.fit(data, epochs=1, verbose=0)
    assert np.all(data.label_quality == 1.0)  # w = 1 before the first fit
    history = model.fit(data, epochs=4, initial_epoch=1, verbose=0).history
    assert not np.all(data.label_quality == 1.0)
    clean = noisy == y
    assert data.label_quality.shape == (256, 1)
    assert data.label_quality[clean].mean() > data.label_quality[~clean].mean() + 0.2
    assert history["noise_auc"][-1] > 0.75
    # Logged per epoch: the mean quality of correct and of wrong labels (this epoch's split).
    assert history["quality_correct"][-1] > history["quality_wrong"][-1] + 0.2


def test_paper_defaults_and_schedule():
    model = keras_sanm.wrap(small_cnn())
    model.compile()
    assert isinstance(model.optimizer, keras.optimizers.SGD)
    assert model.l2_weight_decay == 5e-4
    assert model._lr_schedule.rate(149) == pytest.approx(0.02)
    assert model._lr_schedule.rate(150) == pytest.approx(0.002)


def test_reference_schedule_scales_with_the_length_of_fit():
    x, y = learnable_problem(n=64, seed=3)
    model = keras_sanm.wrap(small_cnn(), sanm=False, seed=0)
    model.compile()  # the reference drop at 150 of 300 epochs: half of any fit
    history = model.fit(x, y, batch_size=32, epochs=4, verbose=0).history
    np.testing.assert_allclose(history["learning_rate"], [0.02, 0.02, 0.002, 0.002])
    model = keras_sanm.wrap(small_cnn(), sanm=False, seed=0)
    model.compile(lr_drop_epochs=(3,))  # fixed epochs do not scale
    history = model.fit(x, y, batch_size=32, epochs=4, verbose=0).history
    np.testing.assert_allclose(history["learning_rate"], [0.02, 0.02, 0.02, 0.002])
    with pytest.raises(ValueError, match="own optimizer"):
        model.compile(optimizer=keras.optimizers.SGD(0.1), lr_drop_epochs=(3,))
    with pytest.raises(ValueError, match=">= 1"):
        model.compile(lr_drop_epochs=(0,))
    with pytest.raises(ValueError, match="no step-wise"):
        keras_sanm.wrap(small_cnn(), method="coteaching", forget_rate=0.2).compile(
            lr_drop_epochs=(3,))


def test_dividemix_schedule_drops_at_150_of_its_reference_length():
    for reference, epochs, drop in ((301, 301, 150), (361, 361, 150), (361, 100, 42)):
        model = keras_sanm.wrap(small_cnn(), method="dividemix", epochs=reference)
        model.compile()
        model.fit_schedule_to_run(epochs)
        assert model._lr_schedule.drop_epochs == (drop,)


def test_coupled_weight_decay_in_gradients():
    model = keras_sanm.wrap(small_cnn(), sanm=False)
    model.compile(optimizer=keras.optimizers.SGD(0.1), weight_decay=0.5)
    grads = [keras.ops.zeros((2,)), keras.ops.ones((2,))]
    vals = [keras.ops.ones((2,)), keras.ops.ones((2,))]
    out = [keras.ops.convert_to_numpy(g) for g in model.transform_gradients(grads, vals, TRAIN)]
    np.testing.assert_allclose(out[0], 0.5)
    np.testing.assert_allclose(out[1], 1.5)


def test_same_seed_same_training():
    x, y = learnable_problem(n=64, seed=4)
    results = []
    for _ in range(2):
        keras.utils.set_random_seed(5)
        model = keras_sanm.wrap(small_cnn(), seed=5)
        model.compile()
        results.append(model.fit(x, y, batch_size=32, epochs=1, verbose=0).history["loss"])
    assert results[0] == pytest.approx(results[1], rel=1e-5)


class PairBatches(keras.utils.PyDataset):
    """A plain (x, y) PyDataset without sample indices."""

    def __init__(self, x, y, batch_size):
        super().__init__()
        self.x, self.y, self.batch_size = x, y, batch_size

    def __len__(self):
        return len(self.x) // self.batch_size

    def __getitem__(self, i):
        s = slice(i * self.batch_size, (i + 1) * self.batch_size)
        return self.x[s], self.y[s]


@pytest.mark.parametrize("kind", ["pydataset", "tf.data"])
def test_fit_on_xy_dataset_uses_stored_gmm(kind):
    x, y = learnable_problem(n=256, seed=6)
    noisy = keras_sanm.data.inject_noise(y, 4, "sym", 0.5, seed=2, include_true_class=False)
    if kind == "pydataset":
        data = PairBatches(x, noisy, 32)
    else:
        import tensorflow as tf

        data = tf.data.Dataset.from_tensor_slices((x, noisy)).batch(32, drop_remainder=True)
    model = keras_sanm.wrap(small_cnn(), seed=0)
    model.compile(optimizer=keras.optimizers.SGD(0.05, momentum=0.9))
    history = model.fit(data, epochs=4, verbose=0).history
    gmm = keras.ops.convert_to_numpy(model.loss_gmm)
    assert gmm[0] == 1.0 and gmm[3] < gmm[6]  # fitted; clean mean below noisy mean
    low, high = gmm[1], gmm[2]
    q = keras.ops.convert_to_numpy(model.quality_from_losses(np.array([low, high], "float32")))
    assert q[0] > 0.5 > q[1]
    assert history["mask_ratio"][-1] > history["mask_ratio"][0] - 0.005
    with pytest.raises(ValueError, match="do not pass `y`"):
        model.fit(data, noisy, epochs=1, verbose=0)


def test_xy_dataset_bad_labels_refused():
    x, y = learnable_problem(n=64, seed=7)
    model = keras_sanm.wrap(small_cnn(), seed=0)
    with pytest.raises(ValueError, match="out of range"):
        model.fit(PairBatches(x, y + 4, 32), epochs=1, verbose=0)
    with pytest.raises(ValueError, match="batch_size is set by the dataset"):
        model.fit(PairBatches(x, y, 32), batch_size=16, epochs=1, verbose=0)
    with pytest.raises(ValueError, match="takes numpy arrays"):
        model.fit([1, 2, 3], epochs=1, verbose=0)


@pytest.mark.slow
@pytest.mark.only_backend("tensorflow", reason="XLA compilation is an option on TensorFlow; "
                          "on JAX every step of the suite runs compiled")
def test_xla_compiled_sanm_step():
    x, y = learnable_problem(n=64, seed=8)
    histories = []
    for jit_compile in (True, False):  # the XLA step computes what the plain one does
        keras.utils.set_random_seed(0)
        model = keras_sanm.wrap(small_cnn(), seed=0)
        model.compile(jit_compile=jit_compile)
        histories.append(model.fit(x, y, batch_size=32, epochs=2, verbose=0).history)
        assert model.jit_compile is jit_compile
    # TensorFlow's XLA kernels draw other random numbers (the mask sizes) from
    # the same seeds; JAX's draw the same.
    # With other mask sizes the losses differ a little more (refined masked
    # targets: up to 0.3% in the second epoch).
    random_differs = keras.backend.backend() == "tensorflow"
    for name in ("loss", "clean_loss", "masked_loss", "reconstruction_loss", "accuracy",
                 *(() if random_differs else ("mask_ratio",))):
        np.testing.assert_allclose(histories[0][name], histories[1][name],
                                   rtol=1e-2 if random_differs else 2e-3, atol=1e-5)
    assert all(0.02 <= r <= 0.1 for h in histories for r in h["mask_ratio"])


def _train_loss_logs(model, x, labels, quality):
    data = (keras.ops.convert_to_tensor(x), keras.ops.convert_to_tensor(labels),
            keras.ops.convert_to_tensor(np.full(len(x), quality, "float32")))
    logs = model.compute_train_loss(data, TRAIN)[1]
    return {k: float(keras.ops.convert_to_numpy(v)) for k, v in logs.items()}


@pytest.mark.slow
def test_refined_masked_targets_stop_the_copies_pulling_towards_doubted_labels(problem):
    x, y = problem
    base = small_cnn()
    label, refined = (keras_sanm.wrap(base, seed=0, masked_targets=kind)
                      for kind in ("label", "refined"))
    # Trusted labels (w = 1): the refined target is the label itself (same
    # network and mask draws; the decoders' random initialisations differ).
    trusted = [_train_loss_logs(m, x[:32], y[:32], 1.0) for m in (label, refined)]
    for key in ("clean_loss", "masked_loss", "classification_loss", "mask_ratio"):
        assert trusted[1][key] == pytest.approx(trusted[0][key], rel=1e-5)
    # A trained network shown wrong labels it doubts (w = 0): with "label" the
    # copies are pulled towards the wrong label, with "refined" towards its prediction.
    label.compile(optimizer=keras.optimizers.SGD(0.05, momentum=0.9))
    label.fit(x, y, batch_size=32, epochs=5, verbose=0)
    wrong = (y[:64] + 1) % 4
    as_label = _train_loss_logs(label, x[:64], wrong, 0.0)
    label.masked_targets = "refined"
    as_refined = _train_loss_logs(label, x[:64], wrong, 0.0)
    assert as_refined["clean_loss"] == pytest.approx(as_label["clean_loss"], rel=1e-5)
    assert as_label["masked_loss"] > 1.5 and as_refined["masked_loss"] < 0.5 * as_label["masked_loss"]
    assert keras_sanm.wrap(small_cnn(), masked_targets="refined").get_config()[
        "masked_targets"] == "refined"
    with pytest.raises(ValueError, match="masked_targets must be one of"):
        keras_sanm.wrap(small_cnn(), masked_targets="prediction")


def test_label_fit_monitor_measures_raw_images_as_the_model_takes_them():
    from keras_sanm.label_quality import per_sample_cross_entropy
    from keras_sanm.training.callbacks import LabelFitMonitor

    rng = np.random.default_rng(0)
    true = rng.integers(0, 4, 96)
    images = rng.integers(0, 256, (96, 16, 16, 3)).astype("uint8")
    noisy = np.where(np.arange(96) % 3 == 0, (true + 1) % 4, true)
    model = keras_sanm.wrap(small_cnn(), sanm=False)
    model.compile()
    as_uint8 = LabelFitMonitor(images, noisy, true)
    as_float = LabelFitMonitor(images.astype("float32"), noisy, true)  # 0-255 floats
    model.fit(images, noisy, batch_size=32, epochs=1, verbose=0, callbacks=[as_uint8])
    as_uint8.set_model(model), as_float.set_model(model)
    measured, expected = as_uint8.measure(), as_float.measure()
    assert measured == pytest.approx(expected, rel=1e-5)
    scores = model.predict(images, verbose=0)
    wrong = noisy != true
    losses = per_sample_cross_entropy(scores, noisy)
    assert measured["loss_wrong_labels"] == pytest.approx(losses[wrong].mean(), rel=1e-4)
    assert measured["memorised_wrong_labels"] == pytest.approx(
        np.mean(scores.argmax(1)[wrong] == noisy[wrong]))
    # Images scaled to [0, 1] for a model trained on 0-255 pixels are refused.
    scaled = LabelFitMonitor(images.astype("float32") / 255, noisy, true)
    scaled.set_model(model)
    with pytest.raises(ValueError, match=r"look scaled to \[0, 1\]"):
        scaled.measure()
