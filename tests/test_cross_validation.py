"""`cross_val_predict_proba`: out-of-sample probabilities on every input kind, fed to
cleanlab; resume after a kill; bad input refused before any training."""

import os

import keras
import numpy as np
import pytest

import keras_sanm
from keras_sanm.cross_validation import fold_indices

from conftest import learnable_problem, small_cnn


def planted_noise(y, count, seed=3):
    rng = np.random.default_rng(seed)
    noisy = y.copy()
    planted = rng.choice(len(y), count, replace=False)
    noisy[planted] = (y[planted] + 1 + rng.integers(0, 3, count)) % 4
    return noisy, planted


def make_ce():
    model = keras_sanm.wrap(small_cnn(), method="ce", sanm=False, seed=0)
    model.compile(optimizer=keras.optimizers.SGD(0.05, momentum=0.9))
    return model


class Recorder(keras.Model):
    """A softmax classifier that records which images each instance trained on."""

    trained_on: list = []

    def __init__(self):
        super().__init__()
        self.flatten = keras.layers.Flatten()
        self.dense = keras.layers.Dense(4, activation="softmax")

    def call(self, x):
        return self.dense(self.flatten(x))

    def fit(self, x, y, **kwargs):
        Recorder.trained_on.append({float(v) for v in np.asarray(x)[:, 0, 0, 0]})
        return super().fit(x, y, **kwargs)


def make_recorder():
    model = Recorder()
    model.compile(optimizer="sgd", loss="sparse_categorical_crossentropy")
    return model


def test_each_sample_is_predicted_by_a_model_that_did_not_train_on_it():
    x, y = learnable_problem(n=60)
    x[:, 0, 0, 0] = np.arange(60)  # an identity per image
    Recorder.trained_on = []
    probabilities = keras_sanm.cross_val_predict_proba(
        make_recorder, x, y, folds=3, fit_kwargs={"epochs": 1, "verbose": 0}, verbose=0)
    assert probabilities.shape == (60, 4) and probabilities.dtype == np.float32
    np.testing.assert_allclose(probabilities.sum(1), 1.0, atol=1e-5)
    parts = fold_indices(y, 3, 0)
    assert len(Recorder.trained_on) == 3
    for held, seen in zip(parts, Recorder.trained_on):
        assert seen == set(range(60)) - set(held.tolist())  # the other folds, all of them
    assert sorted(np.concatenate(parts).tolist()) == list(range(60))
    # Stratified: every fold holds each class in proportion.
    for held in parts:
        assert abs(np.bincount(y[held], minlength=4) - np.bincount(y, minlength=4) / 3).max() <= 1


def test_out_of_sample_probabilities_find_planted_errors_with_cleanlab():
    import cleanlab.filter as cleanlab_filter  # the dev extra installs it: never skipped
    x, y = learnable_problem(n=300)
    noisy, planted = planted_noise(y, 45)
    probabilities = keras_sanm.cross_val_predict_proba(
        make_ce, x, noisy, folds=3, fit_kwargs={"epochs": 10, "batch_size": 32, "verbose": 0},
        verbose=0)
    # The models learnt the clean rule: their held-out predictions mostly give the true class.
    assert (probabilities.argmax(1) == y).mean() > 0.8
    issues = cleanlab_filter.find_label_issues(noisy, probabilities)
    assert issues.dtype == bool and issues.shape == (300,)
    found = np.flatnonzero(issues)
    # 15% of labels are wrong; cleanlab's issues are mostly the planted ones (0.91 on
    # JAX), and most of them are found (0.91).
    assert np.isin(found, planted).mean() > 0.75 and np.isin(planted, found).mean() > 0.75


def test_a_killed_run_resumes_finished_folds_and_the_running_fold(tmp_path):
    x, y = learnable_problem(n=90)
    calls = []

    class Kill(keras.callbacks.Callback):
        def on_epoch_end(self, epoch, logs=None):
            if len(calls) == 2 and epoch == 1:
                # Killed in fold 2 as its second epoch ends, before that epoch's checkpoint.
                raise KeyboardInterrupt

    def counted():
        calls.append(1)
        return make_ce()

    options = {"epochs": 3, "batch_size": 30, "verbose": 0, "callbacks": [Kill()]}
    with pytest.raises(KeyboardInterrupt):
        keras_sanm.cross_val_predict_proba(counted, x, y, folds=3, fit_kwargs=options,
                                           directory=tmp_path, verbose=0)
    first = np.load(tmp_path / "fold_0.npy")
    assert not os.path.exists(tmp_path / "fold_1.npy")
    epochs = []

    class Seen(keras.callbacks.Callback):
        def on_epoch_begin(self, epoch, logs=None):
            epochs.append(epoch)

    calls.clear()
    options["callbacks"] = [Seen()]
    probabilities = keras_sanm.cross_val_predict_proba(
        counted, x, y, folds=3, fit_kwargs=options, directory=tmp_path, verbose=0)
    # Fold 1 read back; fold 2 continued from its checkpoint (its second epoch is redone);
    # fold 3 trained in full.
    assert len(calls) == 2 and epochs == [1, 2, 0, 1, 2]
    np.testing.assert_array_equal(probabilities[fold_indices(y, 3, 0)[0]], first)
    # Another split in the same folder is refused, naming what differs.
    with pytest.raises(ValueError, match="seed"):
        keras_sanm.cross_val_predict_proba(counted, x, y, folds=3, seed=1, fit_kwargs=options,
                                           directory=tmp_path, verbose=0)


def test_a_tf_data_dataset_and_image_files(tmp_path):
    tf = pytest.importorskip("tensorflow")
    x, y = learnable_problem(n=60)
    dataset = tf.data.Dataset.from_tensor_slices((x, y)).batch(20)
    options = {"epochs": 1, "batch_size": None, "verbose": 0}
    from_dataset = keras_sanm.cross_val_predict_proba(
        make_ce, dataset, folds=3, fit_kwargs={"epochs": 1, "verbose": 0}, verbose=0)
    assert from_dataset.shape == (60, 4)
    # Image files on disk (uint8 PNGs), read batch by batch.
    from PIL import Image

    images = np.clip(x * 60 + 128, 0, 255).astype(np.uint8)
    paths = []
    for i, image in enumerate(images):
        paths.append(str(tmp_path / f"{i}.png"))
        Image.fromarray(image).save(paths[-1])
    files = keras_sanm.data.ImageFiles(paths)
    del options["batch_size"]
    from_files = keras_sanm.cross_val_predict_proba(make_ce, files, y, folds=3,
                                                    fit_kwargs=options, verbose=0)
    assert from_files.shape == (60, 4) and np.isfinite(from_files).all()


def test_bad_input_is_refused_before_any_training():
    x, y = learnable_problem(n=30)
    with pytest.raises(ValueError, match="folds"):
        keras_sanm.cross_val_predict_proba(make_ce, x, y, folds=1)
    with pytest.raises(TypeError, match="function"):
        keras_sanm.cross_val_predict_proba(make_ce(), x, y)
    with pytest.raises(ValueError, match="validation_data"):
        keras_sanm.cross_val_predict_proba(make_ce, x, y, fit_kwargs={"validation_data": (x, y)})
    with pytest.raises(ValueError, match="labels"):
        keras_sanm.cross_val_predict_proba(make_ce, x)
    with pytest.raises(ValueError, match="at least 5 samples"):
        keras_sanm.cross_val_predict_proba(make_ce, x[:8], np.arange(8) % 4)

    def logits_model():
        inputs = keras.Input((16, 16, 3))
        outputs = keras.layers.Dense(4)(keras.layers.Flatten()(inputs))
        model = keras.Model(inputs, outputs)
        model.compile(optimizer="sgd",
                      loss=keras.losses.SparseCategoricalCrossentropy(from_logits=True))
        return model

    with pytest.raises(ValueError, match="softmax"):
        keras_sanm.cross_val_predict_proba(logits_model, x, y, folds=2,
                                           fit_kwargs={"epochs": 1, "verbose": 0}, verbose=0)
