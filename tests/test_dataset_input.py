"""Methods with per-sample state train on tf.data and PyDataset input as on arrays."""

import keras
import numpy as np
import pytest

import keras_sanm
from keras_sanm.data import cache_dataset
from keras_sanm.data.dataset_cache import CachedImages

from conftest import DATA_SIDE_ONLY, learnable_problem, small_cnn


def uint8_images(n, seed=0):
    images, labels = learnable_problem(n, seed=seed)
    return np.clip((images + 3.0) / 6.0 * 255.0, 0, 255).astype("uint8"), labels


class ArrayBatches(keras.utils.PyDataset):
    """What a user writes: consecutive `(images, labels)` batches of arrays."""

    def __init__(self, images, labels, batch_size):
        super().__init__()
        self.images, self.labels, self.batch_size = images, labels, batch_size

    def __len__(self):
        return -(-len(self.images) // self.batch_size)

    def __getitem__(self, index):
        part = slice(index * self.batch_size, (index + 1) * self.batch_size)
        return self.images[part], self.labels[part]


def tf_batches(images, labels, batch_size, shuffle=False):
    tf = pytest.importorskip("tensorflow")
    ds = tf.data.Dataset.from_tensor_slices((images, labels))
    if shuffle:
        ds = ds.shuffle(len(images), seed=1, reshuffle_each_iteration=True)
    return ds.batch(batch_size)


# The methods that keep state per sample between epochs, each data path:
# DivideMix's CoDivideData, ELR+'s targets, the Keras loop of SANM(Co-teaching).
SETTINGS = {
    "dividemix_sanm": ("dividemix", True, {"warmup_epochs": 1, "batch_size": 16}),
    "elr_plus": ("elr_plus", False, {}),
    "coteaching_sanm": ("coteaching", True, {"forget_rate": 0.2}),
}


@DATA_SIDE_ONLY
# Each method on one kind (both read through the same copy; every method meets
# every kind in tests/test_contract_matrix.py), DivideMix on both.
@pytest.mark.parametrize("setting,kind", [
    ("dividemix_sanm", "tf.data"), ("dividemix_sanm", "PyDataset"),
    ("elr_plus", "tf.data"), ("coteaching_sanm", "PyDataset")])
def test_per_sample_methods_train_on_datasets_as_on_arrays(setting, kind):
    method, sanm, options = SETTINGS[setting]
    images, labels = uint8_images(96)
    x, y, x_test = images[:64], labels[:64], images[64:]
    dataset = (tf_batches(x, y, 16) if kind == "tf.data" else ArrayBatches(x, y, 16))
    results = []
    for arrays in (True, False):
        keras.utils.set_random_seed(0)
        model = keras_sanm.wrap(small_cnn(), method=method, sanm=sanm, seed=0, **options)
        model.compile()
        if arrays:
            model.fit(x, y, epochs=2, verbose=0,
                      batch_size=None if method == "dividemix" else 16)
        else:
            model.fit(dataset, epochs=2, verbose=0)
            assert isinstance(model._active_fit.source.images, CachedImages)
        results.append((model.predict(x_test, verbose=0), model.label_quality(x, y)))
    # Sample i of the dataset is image i: the same batches, state and model.
    np.testing.assert_allclose(results[1][0], results[0][0], rtol=1e-4, atol=1e-5)
    np.testing.assert_allclose(results[1][1], results[0][1], rtol=1e-4, atol=1e-4)


@DATA_SIDE_ONLY
def test_a_reshuffling_pipeline_trains_and_label_quality_follows_its_order():
    images, labels = uint8_images(64)
    shuffled = tf_batches(images, labels, 16, shuffle=True)
    model = keras_sanm.wrap(small_cnn(), method="dividemix", warmup_epochs=1, batch_size=16,
                            seed=0)
    model.compile()
    model.fit(shuffled, epochs=2, verbose=0)
    # The copy holds the first pass; the labels travel with their images.
    source = model._active_fit.source
    assert sorted(source.labels.tolist()) == sorted(labels.tolist())
    pixels = source.images.load().reshape(64, -1)
    matched = [np.flatnonzero((images.reshape(64, -1) == row).all(1))[0] for row in pixels]
    np.testing.assert_array_equal(labels[matched], source.labels)
    # label_quality and find_label_issues of a dataset: its order, one pass.
    in_order = tf_batches(images, labels, 16)
    np.testing.assert_allclose(model.label_quality(in_order),
                               model.label_quality(images, labels), rtol=1e-4, atol=1e-4)
    np.testing.assert_array_equal(
        keras_sanm.find_label_issues(model, ArrayBatches(images, labels, 10), threshold=None),
        keras_sanm.find_label_issues(model, images, labels, threshold=None))
    with pytest.raises(ValueError, match="do not pass `y`"):
        model.label_quality(in_order, labels)


def test_cache_reads_once_and_says_what_is_wrong(tmp_path):
    images, labels = uint8_images(40)
    cached, cached_labels = cache_dataset(ArrayBatches(images, labels, 16), str(tmp_path),
                                          verbose=0)
    assert cached.shape == images.shape and cached.dtype == np.uint8
    assert cached.source_batch_size == 16 and list(tmp_path.iterdir()) == []  # anonymous
    np.testing.assert_array_equal(cached_labels, labels)
    for key in (3, -1, slice(5, 9), slice(1, 30, 7), np.array([7, 2, 2, 39]),
                np.arange(40) % 3 == 0):
        np.testing.assert_array_equal(cached[key], images[key])
    np.testing.assert_array_equal(cached.load(), images)
    with pytest.raises(TypeError, match="is refused"):
        np.asarray(cached)
    with pytest.raises(IndexError):
        cached[np.array([40])]
    # Float images keep their dtype and values.
    floats, _ = cache_dataset(ArrayBatches(images / 255.0, labels, 16), verbose=0)
    assert floats.dtype == np.float64
    np.testing.assert_array_equal(floats[:], images / 255.0)

    class Mixed(ArrayBatches):
        def __getitem__(self, index):
            x, y = super().__getitem__(index)
            return (x if index == 0 else x[:, :8]), y

    with pytest.raises(ValueError, match="Batch 1 holds"):
        cache_dataset(Mixed(images, labels, 16), verbose=0)
    with pytest.raises(ValueError, match="Labels must be"):
        cache_dataset(ArrayBatches(images, labels - 5, 16), verbose=0)
    with pytest.raises(ValueError, match="yields no batches"):
        cache_dataset(ArrayBatches(images[:0], labels[:0], 16), verbose=0)
    model = keras_sanm.wrap(small_cnn(), method="elr_plus")
    with pytest.raises(ValueError, match="do not pass|neither"):
        model.fit(ArrayBatches(images, labels, 16), labels, verbose=0)
    tf = pytest.importorskip("tensorflow")
    endless = tf.data.Dataset.from_tensor_slices((images, labels)).batch(16).repeat()
    with pytest.raises(ValueError, match="repeats forever"):
        cache_dataset(endless, verbose=0)


@pytest.mark.slow
@DATA_SIDE_ONLY
def test_an_unbatched_dataset_is_refused_with_the_fix():
    tf = pytest.importorskip("tensorflow")
    images, labels = uint8_images(32)
    single = tf.data.Dataset.from_tensor_slices((images, labels))  # as tfds.load gives it
    for method, options in (("ce", {}), ("dividemix", {"batch_size": 8})):
        model = keras_sanm.wrap(small_cnn(), method=method, **options)
        with pytest.raises(ValueError, match=r"single images, not batches.*\.batch\(64\)"):
            model.fit(single, verbose=0)
        # tfds.load without as_supervised yields {"image", "label"} dicts.
        as_dicts = tf.data.Dataset.from_tensor_slices({"image": images, "label": labels})
        with pytest.raises(ValueError, match=r"dicts \(keys \['image', 'label'\]\).*as_supervised"):
            model.fit(as_dicts.batch(8), verbose=0)
    # (labels, 1) columns, as some pipelines give them, are read as (labels,):
    # streamed (CE) and copied (ELR+).
    column = tf.data.Dataset.from_tensor_slices((images, labels[:, None])).batch(16)
    flat = tf.data.Dataset.from_tensor_slices((images, labels)).batch(16)
    predictions = []
    for ds in (column, flat):
        keras.utils.set_random_seed(0)
        model = keras_sanm.wrap(small_cnn(), method="ce", seed=0)
        model.fit(ds, epochs=1, verbose=0)
        predictions.append(model.predict(images, verbose=0))
        assert model.evaluate(column, verbose=0) == model.evaluate(flat, verbose=0)
    np.testing.assert_allclose(predictions[0], predictions[1], rtol=1e-5, atol=1e-6)
    model = keras_sanm.wrap(small_cnn(), method="elr_plus", seed=0)
    model.fit(column, epochs=1, verbose=0)
    np.testing.assert_array_equal(model._active_fit.source.labels, labels)


@DATA_SIDE_ONLY
@pytest.mark.parametrize("setting", ["dividemix_sanm", "coteaching_sanm"])
def test_fit_verbose_0_copies_a_dataset_without_a_progress_bar(setting, capsys):
    # DivideMix fits through the alternating loop, SANM(Co-teaching) through Keras'.
    method, sanm, options = SETTINGS[setting]
    images, labels = uint8_images(32)
    shown = {}
    for verbose in (0, 2):
        model = keras_sanm.wrap(small_cnn(), method=method, sanm=sanm, seed=0, **options)
        model.compile()
        capsys.readouterr()
        model.fit(ArrayBatches(images, labels, 16), epochs=1, verbose=verbose)
        shown[verbose] = capsys.readouterr().out
    assert shown[0] == ""  # verbose=0 prints nothing (tests/test_verbosity.py)
    assert "on-disk copy" in shown[2]  # a verbose fit says what it chose, once
    assert "2/2" in shown[2] and "batch" in shown[2]


@DATA_SIDE_ONLY
@pytest.mark.parametrize("method,options", [("ce", {}), ("dividemix", {"warmup_epochs": 1})])
def test_a_tfds_dataset_trains_as_loaded(method, options):
    # What a tfds user writes; tfds' mock data stands in for the download.
    tfds = pytest.importorskip("tensorflow_datasets")
    with tfds.testing.mock_data(num_examples=48):
        train = tfds.load("cifar10", split="train", as_supervised=True).batch(16)
        test = tfds.load("cifar10", split="test", as_supervised=True).batch(16)
    images, labels = (np.concatenate(part) for part in zip(*test.as_numpy_iterator()))
    assert images.dtype == np.uint8 and len(images) == 48
    model = keras_sanm.wrap(keras_sanm.backbones.SmallCNN(10), method=method, seed=0, **options)
    history = model.fit(train, epochs=2, validation_data=test, verbose=0)
    by_hand = float(np.mean(np.argmax(model.predict(images, verbose=0), -1) == labels))
    assert history.history["val_accuracy"][-1] == pytest.approx(by_hand, abs=1e-6)
    assert model.evaluate(test, verbose=0, return_dict=True)["accuracy"] == pytest.approx(
        by_hand, abs=1e-6)
    assert model.label_quality(train).shape == (48,)
