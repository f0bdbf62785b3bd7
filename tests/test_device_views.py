"""Strong views drawn on the device (`keras_sanm.methods.dividemix.device_views`) against the Pillow path."""

import keras
import numpy as np
import pytest
from keras import ops
from PIL import Image
from scipy.stats import ks_2samp

import keras_sanm
from keras_sanm.backend import device_kind
from keras_sanm.data import CoDivideData, autoaugment_view, randaugment_view
from keras_sanm.data.augment import weak_augment
from keras_sanm.data.strong_augment import CIFAR10_POLICY, RANDAUGMENT_POOL, _aa_op, _ra_op
from keras_sanm.methods.dividemix import device_views, image_ops

from conftest import small_cnn


def natural_images(n, size=32, seed=0):
    """Smooth colour fields with edges and some texture: every operation changes them."""
    rng = np.random.default_rng(seed)
    coarse = rng.uniform(0, 255, (n, 4, 4, 3))
    fields = np.repeat(np.repeat(coarse, size // 4, axis=1), size // 4, axis=2)
    low = rng.uniform(0, 90, (n, 1, 1, 3))
    high = rng.uniform(150, 255, (n, 1, 1, 3))
    texture = rng.normal(0, 12, (n, size, size, 3))
    pixels = low + (fields / 255.0) * (high - low) + texture
    return np.clip(pixels, 0, 255).astype(np.uint8)


def _host(op, name, strength, images, seed):
    """The host operation on each image; signed operations draw their sign first."""
    out = []
    for i, image in enumerate(images):
        out.append(np.asarray(op(name, strength, Image.fromarray(image),
                                 np.random.default_rng(seed + i))))
    return np.stack(out).astype(np.float32)


def _signs(count, seed):
    """The host's `_sign` draw of `np.random.default_rng(seed + i)`, per image."""
    return np.array([1.0 if np.random.default_rng(seed + i).random() < 0.5 else -1.0
                     for i in range(count)], np.float32)


def _device(name, values, signs, images, geometry):
    """The device operation with the parameter of each image's sign (`values`: +1, -1)."""
    chosen = np.where(signs > 0, values[0], values[1]).astype(np.float32)
    out = device_views._apply(ops.convert_to_tensor(images.astype(np.float32)), name,
                              ops.convert_to_tensor(chosen), geometry)
    return ops.convert_to_numpy(out)


def _assert_pillow(device, host, name):
    difference = np.abs(device - host)
    if name.startswith("autocontrast"):
        # Pillow computes the stretch in double precision: values that land
        # exactly on an integer may truncate one level lower there.
        assert difference.max() <= 1 and np.mean(difference > 0) < 0.02, name
    elif name.startswith("shear"):
        # Bicubic weights in float32 instead of Pillow's double: a level apart
        # here and there; and where a source coordinate is exactly 0 in exact
        # arithmetic (a shear of 2/30 at x = 7), double rounding puts it just
        # outside (grey fill) and float32 at 0 (a pixel), or the other way.
        assert np.mean(difference > 0) < 0.02 and np.mean(difference > 1) < 0.001, name
    else:
        assert difference.max() == 0, name


def test_every_autoaugment_operation_at_every_level_is_the_host_operation():
    images = natural_images(6)
    names = sorted({row[i] for row in CIFAR10_POLICY for i in (1, 4)})
    signs = _signs(len(images), 100)
    for name in names:
        for level in range(10):
            host = _host(_aa_op, name, level, images, 100)
            values = device_views._autoaugment_values(name, level, 32)
            device = _device(name, values, signs, images, device_views._AUTOAUGMENT_GEOMETRY)
            _assert_pillow(device, host, f"{name} level {level}")


def test_every_randaugment_operation_at_every_strength_is_the_host_operation():
    images = natural_images(6, seed=1)
    signs = _signs(len(images), 200)
    for name in RANDAUGMENT_POOL:
        for strength in range(1, 10):
            host = _host(_ra_op, name, strength, images, 200)
            values = device_views._randaugment_values(name, strength, 32)
            device = _device(name, values, signs, images, device_views._RANDAUGMENT_GEOMETRY)
            _assert_pillow(device, host, f"{name} strength {strength}")


def test_crop_flip_and_cutout_are_the_host_ones_for_the_same_draws():
    images = natural_images(8)
    rng = np.random.default_rng(3)
    expected = weak_augment(images, rng)
    rng = np.random.default_rng(3)
    tops, lefts = rng.integers(0, 9, 8), rng.integers(0, 9, 8)
    flips = rng.random(8) < 0.5
    crops = image_ops.crop_and_flip(ops.convert_to_tensor(images.astype(np.float32)),
                                    tops, lefts, flips)
    np.testing.assert_array_equal(ops.convert_to_numpy(crops), expected)
    # Cutout: ImageDraw's rectangle includes both corners (17 pixels unclipped).
    centres = np.array([[16.0, 16.0], [1.0, 30.5], [31.9, 0.2]], np.float32)
    cut = ops.convert_to_numpy(image_ops.cutout(
        ops.convert_to_tensor(images[:3].astype(np.float32)), centres[:, 0], centres[:, 1]))
    assert np.all(cut[0, 8:25, 8:25] == 127) and np.sum(np.all(cut[0] == 127, -1)) == 17 * 17
    assert np.all(cut[1, 22:32, 0:17] == 127) and np.sum(np.all(cut[1] == 127, -1)) == 10 * 17
    assert np.sum(np.all(cut[2] == 127, -1)) == 9 * 17


def _frequencies(op_index, value, applied):
    """Share of draws per `(operation, parameter)` among all draws (applied ones only)."""
    op_index, value = ops.convert_to_numpy(op_index), ops.convert_to_numpy(value)
    applied = ops.convert_to_numpy(applied)
    keys = [(int(o), round(float(v), 3)) for o, v, a in zip(op_index, value, applied) if a]
    counts = {}
    for key in keys:
        counts[key] = counts.get(key, 0) + 1
    return {key: count / len(applied) for key, count in counts.items()}


def _assert_frequencies(observed, expected, draws):
    for key in set(observed) | set(expected):
        p = expected.get(key, 0.0)
        tolerance = 5 * np.sqrt(max(p, 1.0 / draws) * (1 - p) / draws)
        assert abs(observed.get(key, 0.0) - p) <= tolerance, (key, observed.get(key), p)


def _add(expected, key, share):
    expected[key] = expected.get(key, 0.0) + share


def test_autoaugment_draws_have_the_policy_frequencies():
    """Per slot: how often each operation is applied with each parameter (signs included)."""
    draws = 20000
    slots = device_views.autoaugment_draws(draws, 32, 32, keras.random.SeedGenerator(3))
    for slot, (op_index, value, applied) in zip((0, 3), slots):
        expected = {}
        for row in CIFAR10_POLICY:
            name, level = row[slot + 1], row[slot + 2]
            plus, minus = device_views._autoaugment_values(name, level, 32)
            op = device_views.AUTOAUGMENT_OPERATIONS.index(name)
            for v in (plus, minus):  # each sign with probability 1/2
                _add(expected, (op, round(v, 3)), row[slot] / len(CIFAR10_POLICY) / 2)
        _assert_frequencies(_frequencies(op_index, value, applied), expected, draws)


def test_randaugment_draws_have_the_pool_frequencies():
    draws = 40000
    rounds, (centre_x, centre_y) = device_views.randaugment_draws(
        draws, 32, 32, keras.random.SeedGenerator(4))
    expected = {}
    for op, name in enumerate(RANDAUGMENT_POOL):
        for strength in range(1, 10):
            plus, minus = device_views._randaugment_values(name, strength, 32)
            for v in (plus, minus):
                _add(expected, (op, round(v, 3)), 0.5 / len(RANDAUGMENT_POOL) / 9 / 2)
    assert len(rounds) == 2
    for op_index, value, applied in rounds:
        _assert_frequencies(_frequencies(op_index, value, applied), expected, draws)
    for centre in (centre_x, centre_y):
        counts = np.histogram(ops.convert_to_numpy(centre), bins=8, range=(0, 32))[0]
        _assert_frequencies({i: c / draws for i, c in enumerate(counts)},
                            {i: 1 / 8 for i in range(8)}, draws)


def _features(views, originals):
    views, originals = views.astype(np.float32), originals.astype(np.float32)
    # Where the fill (grey or black borders of shifts, shears, rotations) lies:
    # signed, so the signs' draws show.
    fill = np.all(views == 128, -1) | np.all(views == 0, -1)
    columns = np.arange(views.shape[2]) - (views.shape[2] - 1) / 2
    rows = np.arange(views.shape[1]) - (views.shape[1] - 1) / 2
    return {
        "brighter": views.mean((1, 2, 3)) - originals.mean((1, 2, 3)),
        "more contrast": views.std((1, 2, 3)) - originals.std((1, 2, 3)),
        "fill column": (fill * columns[None, None, :]).mean((1, 2)),
        "fill row": (fill * rows[None, :, None]).mean((1, 2)),
        "mean": views.mean((1, 2, 3)),
        "std": views.std((1, 2, 3)),
        "grey fill": np.all(views == 128, -1).mean((1, 2)),
        "cutout": np.all(views == 127, -1).mean((1, 2)),
        "black": np.all(views == 0, -1).mean((1, 2)),
        "change": np.abs(views - originals).mean((1, 2, 3)),
        "colourfulness": np.abs(views - views.mean(-1, keepdims=True)).mean((1, 2, 3)),
        "inverted": np.mean(views > 255 - originals, axis=(1, 2, 3)),
    }


@pytest.mark.parametrize("name,host_view", [("autoaugment", autoaugment_view),
                                            ("randaugment", randaugment_view)])
def test_device_views_follow_the_host_distribution(name, host_view):
    """Per-image statistics of 800 views: the same distribution on both paths.

    Each operation is checked exactly above; this checks the draws (which
    sub-policy or operations, how often applied, magnitudes, signs, crops,
    Cutout places): a two-sample KS test per statistic.
    """
    images = natural_images(800, seed=5)
    host = host_view(images, np.random.default_rng(0))
    seed = keras.random.SeedGenerator(7)
    device = ops.convert_to_numpy(
        device_views.training_views(images, (name,), seed)[0])
    assert device.shape == images.shape and np.all(device == np.round(device))
    host_features, device_features = _features(host, images), _features(device, images)
    for feature, values in host_features.items():
        result = ks_2samp(values, device_features[feature])
        assert result.pvalue > 1e-3, (feature, result, values.mean(),
                                      device_features[feature].mean())


def test_training_views_keep_the_images_scale_and_follow_the_seed():
    images = natural_images(4)
    as_unit = images.astype(np.float32) / 255.0
    names = ("weak", "autoaugment", "randaugment", "none")
    first = device_views.training_views(images, names, keras.random.SeedGenerator(1))
    unit = device_views.training_views(as_unit, names, keras.random.SeedGenerator(1), 1.0)
    again = device_views.training_views(images, names, keras.random.SeedGenerator(1))
    other = device_views.training_views(images, names, keras.random.SeedGenerator(2))
    for a, u, b, _ in zip(first, unit, again, other):
        a, u = ops.convert_to_numpy(a), ops.convert_to_numpy(u)
        np.testing.assert_allclose(u * 255.0, a, atol=1e-3)
        np.testing.assert_array_equal(a, ops.convert_to_numpy(b))
    assert not np.array_equal(ops.convert_to_numpy(first[1]), ops.convert_to_numpy(other[1]))
    np.testing.assert_array_equal(ops.convert_to_numpy(first[3]), images)
    with pytest.raises(ValueError, match="No device version"):
        device_views.training_views(images, ("strong_warmup",), keras.random.SeedGenerator(1))


def _sanm_dividemix(**options):
    return keras_sanm.wrap(small_cnn(input_shape=(32, 32, 3)), method="dividemix", seed=0,
                           warmup_epochs=1, batch_size=16, **options)


@pytest.mark.slow
def test_sanm_dividemix_trains_with_views_drawn_in_the_step():
    images = natural_images(96, seed=2)
    labels = np.random.default_rng(0).integers(0, 4, 96)
    model = _sanm_dividemix(view_augmentation="device")
    assert model.views_on_device
    model.compile(optimizer=keras.optimizers.SGD(0.05, momentum=0.9))
    history = model.fit(images, labels, epochs=2, verbose=0).history
    assert np.isnan(history["mask_ratio"][0]) and 0.0 < history["mask_ratio"][1] < 0.2
    for name in ("loss", "labeled_loss", "unlabeled_loss", "reconstruction_loss"):
        assert np.isfinite(history[name][1]), name
    # The data pipeline sends each image once; the step draws the six views.
    sent = model.training_data(images, labels)
    assert sent.views == ("none",) and model.view_pixel_scale == 255.0
    batch = sent.training_batch(0, sent.training_plan(0, 0.5, 1)[0])
    assert batch["labeled_views"].shape == (16, 1, 32, 32, 3)
    restored = type(model).from_config(model.get_config())
    assert restored.view_augmentation == "device"


def test_view_augmentation_choices_and_errors():
    assert _sanm_dividemix().views_on_device is (device_kind() != "cpu")
    assert not _sanm_dividemix(view_augmentation="host").views_on_device
    with pytest.raises(ValueError, match="view_augmentation must be"):
        _sanm_dividemix(view_augmentation="gpu")
    model = _sanm_dividemix(view_augmentation="device")
    images = natural_images(32)
    labels = np.arange(32) % 4
    six = CoDivideData(images, labels, batch_size=16, views=model.views)
    with pytest.raises(ValueError, match=r"views=\('none',\)"):
        model.training_data(six, None)
    standardised = (images - 127.5).astype(np.float32) / 64.0
    with pytest.raises(ValueError, match="standardisation"):  # the strong warm-up's check
        model.training_data(standardised, labels)
    weak_warmup = _sanm_dividemix(view_augmentation="device", strong_warmup=False)
    with pytest.raises(ValueError, match="look standardised"):
        weak_warmup.training_data(standardised, labels)
    unit_scale = _sanm_dividemix(view_augmentation="device")
    assert unit_scale.training_data(images / np.float32(255), labels).views == ("none",)
    assert unit_scale.view_pixel_scale == 1.0
