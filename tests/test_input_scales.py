"""The same pictures in every input scale train alike, with every method.

The input contract: images go in as the user holds them (uint8, floats in
[0, 1], floats in [0, 255], or floats the user standardised). Each method
trains on the same noisy-labelled pictures in the four scales, from the same
initial weights and seed. The model standardises raw images itself, so every
scale it takes gives the network the same inputs up to float rounding: the
trained models must predict alike (probabilities, label quality) and reach
the same test accuracy up to small margins. A scale that trained clearly
worse (as standardised images did while their crops were padded with their
mean colour instead of black) fails. Methods whose default
views are 8-bit strong augmentations (Pillow operations: SSR, SANM(DivideMix))
refuse standardised floats before any step, with an error that says what to
pass, and take the other three.
"""

import keras
import numpy as np
import pytest

import keras_sanm

from conftest import DATA_SIDE_ONLY, scale_pictures, small_cnn

N_TRAIN, N_TEST, NOISE = 64, 32, 0.3
# (method, sanm) -> wrap options and epochs for the tiny pictures.
RUNS = {
    ("ce", False): ({}, 3),
    ("ce", True): ({}, 2),
    ("coteaching", False): ({"forget_rate": NOISE}, 3),
    ("cdr", False): ({"noise_rate": NOISE}, 3),
    ("elr_plus", False): ({"batch_size": 16}, 2),
    ("dividemix", False): ({"batch_size": 16, "warmup_epochs": 1}, 2),
    ("ssr", False): ({"batch_size": 16, "k": 8}, 2),
}
# The default views are Pillow's 8-bit strong augmentations. (SANM(DivideMix)'s
# are too: its refusal is checked below; SSR stands for the 8-bit path of the
# other scales.)
STRONG_VIEWS = {("ssr", False), ("dividemix", True)}
# How far the scales may differ: predicted probabilities and label quality
# (largest difference), and test accuracy. Float rounding of the same inputs
# moves them far less; padding the crops of standardised images with their
# mean colour instead of black moved them by more.
PROBABILITY_TOLERANCE, ACCURACY_MARGIN = 0.05, 0.1


def train(method, sanm, images, labels, test_images, test_labels):
    options, epochs = RUNS[(method, sanm)]
    keras.utils.set_random_seed(0)
    model = keras_sanm.wrap(small_cnn(), method=method, sanm=sanm, seed=0, **options)
    model.compile()
    model.fit(images, labels, epochs=epochs, verbose=0,
              **({} if keras_sanm.methods.get(method).batch_size_option else {"batch_size": 32}))
    accuracy = float(np.mean(np.argmax(model.predict(test_images, verbose=0), -1) == test_labels))
    return model, accuracy


# The scales meet in the data side (host code, the same on every backend) and
# in the model's preprocessing layer: CE checks both on every backend, the
# other methods (DivideMix's alternating loop included) once.
EVERY_BACKEND = {("ce", False)}
CASES = [pytest.param(*case, id=f"{case[0]}{'_sanm' if case[1] else ''}",
                      marks=() if case in EVERY_BACKEND else DATA_SIDE_ONLY)
         for case in sorted(RUNS)]


@pytest.mark.slow
@pytest.mark.parametrize(("method", "sanm"), CASES)
def test_every_scale_trains_alike(method, sanm):
    scales, labels, clean = scale_pictures(N_TRAIN, N_TEST, NOISE)
    y, y_test = labels[:N_TRAIN], clean[N_TRAIN:]
    results = {}
    for name, images in scales.items():
        x, x_test = images[:N_TRAIN], images[N_TRAIN:]
        if name == "standardised" and (method, sanm) in STRONG_VIEWS:
            with pytest.raises(ValueError, match="Pass images before standardisation"):
                train(method, sanm, x, y, x_test, y_test)
            continue
        model, accuracy = train(method, sanm, x, y, x_test, y_test)
        results[name] = (model.predict_proba(x_test, verbose=0),
                         model.label_quality(x, y), accuracy)
    assert len(results) == (3 if (method, sanm) in STRONG_VIEWS else 4)
    reference = results["uint8"]
    for name, (probabilities, quality, accuracy) in results.items():
        where = f"{name} against uint8"
        assert np.abs(probabilities - reference[0]).max() < PROBABILITY_TOLERANCE, where
        assert np.abs(quality - reference[1]).max() < PROBABILITY_TOLERANCE, where
        assert accuracy >= max(r[2] for r in results.values()) - ACCURACY_MARGIN, where


def test_sanm_dividemix_refuses_standardised_images_before_any_step():
    scales, labels, _ = scale_pictures(32, 0, NOISE)
    model = keras_sanm.wrap(small_cnn(), method="dividemix", seed=0, batch_size=16)
    with pytest.raises(ValueError, match="Pass images before standardisation"):
        model.fit(scales["standardised"], labels, epochs=1, verbose=0)


def test_dividemix_on_a_gpu_draws_the_views_of_standardised_images_on_the_host(monkeypatch):
    # "auto" draws the views on the device of a GPU, from 8-bit pixels.
    monkeypatch.setattr("keras_sanm.methods.dividemix.trainers.device_kind", lambda: "gpu")
    scales, labels, _ = scale_pictures(32, 0, NOISE)
    for name, on_device in (("uint8", True), ("standardised", False)):
        model = keras_sanm.wrap(small_cnn(), method="dividemix", sanm=False, seed=0,
                                batch_size=16, warmup_epochs=1)
        assert model.views_on_device
        model.fit(scales[name], labels, epochs=2, verbose=0)
        assert model.views_on_device is on_device, name


def test_crops_of_standardised_images_are_padded_with_their_black_and_callables_see_them_as_given():
    from keras_sanm.data import CoDivideData, IndexedDataset
    from keras_sanm.data.augment import black_level

    scales, labels, _ = scale_pictures(32, 0, NOISE)
    images = scales["standardised"]
    black = black_level(images)
    np.testing.assert_allclose(black, images.reshape(-1, 3).min(0))
    assert black_level(scales["uint8"]) is None and black_level(scales["unit"]) is None

    def shift_all(batch, rng):  # a crop entirely of padding, as an extreme crop
        return np.zeros_like(batch)

    seen = []

    def record(batch, rng):
        seen.append(np.array(batch))
        return batch

    padded = IndexedDataset(images, labels, 8, 4, augment="weak", seed=0)
    assert padded.black is not None
    data = CoDivideData(images, labels, 8, 4, views=(record,), warmup_augment=shift_all, seed=0)
    batch = data.warmup_batch(np.arange(8))["images"]
    # A user callable's zeros are zeros, not black: it sees the images as given.
    np.testing.assert_array_equal(batch, 0.0)
    np.testing.assert_array_equal(seen[0], images[:2])
    named = CoDivideData(images, labels, 8, 4, views=("weak",), warmup_augment="weak", seed=0)
    assert named.builtin_views and not data.builtin_views
    # The package's crop pads with black: a one-pixel border of a shifted crop.
    rng = np.random.default_rng(1)
    crops = named._in_own_scale(named._warmup_fn(named._pixels(np.arange(32)), rng))
    border = np.concatenate([crops[:, 0], crops[:, -1], crops[:, :, 0], crops[:, :, -1]])
    pixels = border.reshape(-1, 3)
    padding = np.all(np.isclose(pixels, black, atol=1e-5), axis=1)
    assert padding.any() and not np.any(np.all(np.isclose(pixels, 0.0, atol=1e-5), axis=1))
