"""One preprocessing decision per model: images go in as the user holds them, in every call."""

import keras
import numpy as np
import pytest

import keras_sanm
from keras_sanm.data import normalize_images
from keras_sanm.data.preprocessing import ImagePreprocessing

from conftest import learnable_problem, small_cnn


def uint8_problem(n=192, seed=0):
    images, labels = learnable_problem(n, seed=seed)
    return np.clip((images + 3.0) / 6.0 * 255.0, 0, 255).astype("uint8"), labels


def hand_accuracy(model, images, labels) -> float:
    return float(np.mean(np.argmax(model.predict(images, verbose=0), axis=-1) == labels))


# fit, evaluate, predict, label quality and saving for every method and input kind:
# tests/test_contract_matrix.py.


def test_standardised_images_pass_through_and_published_constants_apply():
    x, y = learnable_problem(64)  # floats with negative values: already standardised
    model = keras_sanm.wrap(small_cnn(), sanm=False, seed=0)
    model.compile()
    model.fit(x, y, batch_size=32, epochs=1, verbose=0)
    assert model.preprocessing.pixel_scale is None and model.preprocessing.mean is None
    np.testing.assert_allclose(model.predict(x, verbose=0),
                               keras.ops.convert_to_numpy(model.scores(x)), rtol=1e-5, atol=1e-6)
    with pytest.raises(ValueError, match="already standardised"):
        model.predict(np.zeros((2, 16, 16, 3), "uint8"), verbose=0)
    # A dataset's published constants, with uint8 images: what the command line trains.
    u8, labels = uint8_problem(64)
    cifar = keras_sanm.wrap(small_cnn(), sanm=False, seed=0, preprocessing="cifar10")
    cifar.compile()
    cifar.fit(u8, labels, batch_size=32, epochs=1, verbose=0)
    mean, std = keras_sanm.data.NORMALIZATION["cifar10"]
    assert cifar.preprocessing.pixel_scale == 255.0
    np.testing.assert_allclose(cifar.preprocessing.mean, mean)
    np.testing.assert_allclose(cifar.predict(u8, verbose=0), keras.ops.convert_to_numpy(
        cifar.scores(normalize_images(u8, mean, std))), rtol=1e-4, atol=1e-5)


def test_a_dataset_fixes_the_preprocessing_from_its_first_batches():
    tf = pytest.importorskip("tensorflow")
    u8, labels = uint8_problem(96)
    ds = tf.data.Dataset.from_tensor_slices((u8, labels)).batch(32)
    model = keras_sanm.wrap(small_cnn(), sanm=False, seed=0)
    model.compile()
    model.fit(ds, epochs=1, verbose=0)
    assert model.preprocessing.pixel_scale == 255.0
    np.testing.assert_allclose(model.preprocessing.mean,
                               (u8.astype("float32") / 255).reshape(-1, 3).mean(0), rtol=1e-4)
    evaluated = model.evaluate(ds, verbose=0, return_dict=True)["accuracy"]
    assert evaluated == pytest.approx(hand_accuracy(model, u8, labels), abs=1e-6)
    unit = tf.data.Dataset.from_tensor_slices((u8.astype("float32") / 255, labels)).batch(32)
    with pytest.raises(ValueError, match="as it was trained on"):
        model.evaluate(unit, verbose=0)


def test_first_use_without_fit_fixes_it_and_train_on_batch_too():
    u8, labels = uint8_problem(64)
    model = keras_sanm.wrap(small_cnn(), sanm=False, seed=0)
    scores = model.predict(u8, verbose=0)  # an untrained model still predicts
    assert scores.shape == (64, 4) and model.preprocessing.pixel_scale == 255.0
    other = keras_sanm.wrap(small_cnn(), sanm=False, seed=0)
    other.compile()
    other.train_on_batch(u8[:32] / 255.0, labels[:32])
    assert other.preprocessing.pixel_scale == 1.0


def test_inference_rules_checks_and_config():
    rng = np.random.default_rng(0)
    u8 = rng.integers(0, 256, (20, 4, 4, 3)).astype("uint8")
    cases = [(u8, 255.0), (u8 / 255.0, 1.0), (u8.astype("float32"), 255.0),
             (u8 / 255.0 - 0.5, None)]
    for images, scale in cases:
        pre = ImagePreprocessing()
        message = pre.decide(images)
        assert pre.decided and pre.pixel_scale == scale and message.startswith("Input preprocessing")
        if scale is None:
            assert pre.mean is None
            np.testing.assert_allclose(pre.apply_numpy(images), images, rtol=1e-6)
        else:
            out = pre.apply_numpy(images)
            np.testing.assert_allclose(out.reshape(-1, 3).mean(0), 0.0, atol=1e-4)
            np.testing.assert_allclose(out.reshape(-1, 3).std(0), 1.0, rtol=1e-3)
            np.testing.assert_allclose(keras.ops.convert_to_numpy(pre(images)), out, rtol=1e-5,
                                       atol=1e-5)
        assert pre.decide(images) is None  # decided once
        again = ImagePreprocessing.create(pre.get_config())
        assert again.get_config() == pre.get_config()
    with pytest.raises(ValueError, match="Cannot read the pixel scale"):
        ImagePreprocessing().decide(np.full((2, 4, 4, 3), 300.0))
    with pytest.raises(ValueError, match="values up to 255"):
        ImagePreprocessing(pixel_scale=1.0, mean=None, std=None).check(u8)
    with pytest.raises(ValueError, match="negative values"):
        ImagePreprocessing(pixel_scale=255.0, mean=None, std=None).check(u8 / 255.0 - 0.5)
    with pytest.raises(ValueError, match="together"):
        ImagePreprocessing(mean=(0.5, 0.5, 0.5))
    with pytest.raises(ValueError, match="pixel_scale"):
        ImagePreprocessing(pixel_scale=2.0)
    with pytest.raises(ValueError, match="No published constants"):
        ImagePreprocessing.create("imagenet21k")
    none = ImagePreprocessing.create("none")
    assert none.decided and none.pixel_scale is None and none.mean is None


def test_strong_views_refuse_standardised_images_before_any_step():
    x, y = learnable_problem(64)  # floats with negative values
    model = keras_sanm.wrap(small_cnn(), method="dividemix", warmup_epochs=1, batch_size=16)
    model.compile()
    with pytest.raises(ValueError, match="before standardisation"):
        model.fit(x, y, epochs=2, verbose=0)
    assert int(model.optimizer.iterations.numpy()) == 0


def test_arrays_get_the_methods_reference_augmentation_unless_switched_off():
    from keras_sanm.data.augment import weak_augment

    u8, labels = uint8_problem(64)
    for method, options, expected in (("ce", {}, weak_augment),
                                      ("cdr", {"noise_rate": 0.2}, weak_augment),
                                      ("coteaching", {"forget_rate": 0.2}, None),
                                      ("ce", {"augment": None}, None)):
        model = keras_sanm.wrap(small_cnn(), method=method, sanm=False, seed=0, **options)
        model.compile()
        model.fit(u8, labels, batch_size=32, epochs=1, verbose=0)
        assert model._active_fit.source.augment is expected, (method, options)
        assert model.get_config()["augment"] == (None if expected is None else "weak")
    dividemix = keras_sanm.wrap(small_cnn(), method="dividemix", sanm=False, augment=None,
                                warmup_epochs=1, batch_size=16)
    data = dividemix.training_data(u8, labels)
    assert data.views == ("none", "none")
    with pytest.raises(ValueError, match="augment must be"):
        keras_sanm.wrap(small_cnn(), augment="strong")
