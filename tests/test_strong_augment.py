"""Strong augmentation views: AutoAugment CIFAR policy, RandAugment-MC with Cutout."""

import numpy as np
import pytest
from PIL import Image

from keras_sanm.data import autoaugment_view, randaugment_view, warmup_view
from keras_sanm.data.strong_augment import (
    CIFAR10_POLICY,
    RANDAUGMENT_POOL,
    _aa_op,
    _ra_op,
    cutout_image,
)


def images(n=6, seed=0):
    return np.random.default_rng(seed).integers(0, 256, (n, 32, 32, 3), dtype=np.uint8)


@pytest.mark.parametrize("view", [autoaugment_view, randaugment_view, warmup_view])
def test_views_keep_shape_dtype_and_follow_the_seed(view):
    x = images()
    a = view(x, np.random.default_rng(1))
    b = view(x, np.random.default_rng(1))
    c = view(x, np.random.default_rng(2))
    assert a.shape == x.shape and a.dtype == np.uint8
    np.testing.assert_array_equal(a, b)
    assert not np.array_equal(a, c)
    assert not np.array_equal(a, x)


def test_every_operation_runs_at_every_strength():
    img = Image.fromarray(images(1)[0])
    rng = np.random.default_rng(0)
    names = {p[1] for p in CIFAR10_POLICY} | {p[4] for p in CIFAR10_POLICY}
    assert len(CIFAR10_POLICY) == 25 and len(RANDAUGMENT_POOL) == 14
    for name in names:
        for level in range(10):
            assert np.asarray(_aa_op(name, level, img, rng)).shape == (32, 32, 3)
    for name in RANDAUGMENT_POOL:
        for strength in range(1, 10):
            assert np.asarray(_ra_op(name, strength, img, rng)).shape == (32, 32, 3)


def test_cutout_is_a_grey_square_of_at_most_17_pixels():
    img = Image.fromarray(np.zeros((32, 32, 3), np.uint8))
    out = np.asarray(cutout_image(img, 16, np.random.default_rng(3)))
    grey = np.all(out == 127, axis=-1)
    rows, cols = np.flatnonzero(grey.any(1)), np.flatnonzero(grey.any(0))
    assert 1 <= len(rows) <= 17 and 1 <= len(cols) <= 17
    assert grey.sum() == len(rows) * len(cols)  # one rectangle


def test_strong_views_need_uint8_rgb():
    with pytest.raises(ValueError, match="uint8"):
        autoaugment_view(np.zeros((2, 32, 32, 3), np.float32), np.random.default_rng(0))
    with pytest.raises(ValueError, match="RGB"):
        autoaugment_view(images(2)[..., :1], np.random.default_rng(0))


def test_divide_data_gives_float_images_views_in_their_own_scale():
    from keras_sanm.data import CoDivideData

    x = images(8)
    labels = np.arange(8) % 2
    views = ("autoaugment", "randaugment")
    as_uint8 = CoDivideData(x, labels, batch_size=4, views=views, seed=3)
    reference = as_uint8._views(np.arange(4))
    # The scale is read once from the whole set, so a batch of dark images
    # in [0, 255] is not mistaken for [0, 1].
    dark = x.astype(np.float32)
    dark[:4] = np.minimum(dark[:4], 1.0)
    for scale, floats in ((1.0, x.astype(np.float32) / 255), (255.0, x.astype(np.float32)),
                          (255.0, dark)):
        data = CoDivideData(floats, labels, batch_size=4, views=views, seed=3)
        assert data.pixel_scale == scale
        out = data._views(np.arange(4))
        assert out.dtype == np.float32 and out.max() <= scale
        expected = reference if floats is not dark else CoDivideData(
            dark.astype(np.uint8), labels, batch_size=4, views=views, seed=3)._views(np.arange(4))
        np.testing.assert_allclose(out * (255 / scale), expected, atol=1e-3)
    with pytest.raises(ValueError, match="before standardisation"):
        CoDivideData(x.astype(np.float32) / 255 - 0.5, labels, batch_size=4, views=views)


def test_warmup_affine_without_motion_is_identity():
    from keras_sanm.data.strong_augment import _random_affine

    img = Image.fromarray(images(1)[0])
    out = _random_affine(img, np.random.default_rng(0), degrees=0, translate=0, scale=(1, 1), shear=0)
    np.testing.assert_array_equal(np.asarray(out), np.asarray(img))
