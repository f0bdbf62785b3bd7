import numpy as np
import pytest

from keras_sanm.data import IndexedDataset, normalize_images, weak_augment


def test_weak_augment_is_a_shifted_crop_or_its_mirror():
    rng = np.random.default_rng(0)
    images = rng.integers(1, 255, (64, 8, 8, 3)).astype(np.uint8)
    out = weak_augment(images, np.random.default_rng(1), padding=2)
    assert out.shape == images.shape and out.dtype == np.uint8
    padded = np.pad(images, ((0, 0), (2, 2), (2, 2), (0, 0)))
    flips = 0
    for img, src in zip(out, padded):
        found = False
        for dy in range(5):
            for dx in range(5):
                crop = src[dy:dy + 8, dx:dx + 8]
                if np.array_equal(img, crop):
                    found = True
                elif np.array_equal(img, crop[:, ::-1]):
                    found, flips = True, flips + 1
        assert found
    assert 10 < flips < 54  # p = 0.5


def test_normalize_images():
    x = np.full((1, 2, 2, 3), 255, np.uint8)
    out = normalize_images(x, (0.5, 0.5, 0.5), (0.25, 0.25, 0.25))
    np.testing.assert_allclose(out, 2.0)
    assert out.dtype == np.float32


def test_indexed_dataset_batches_and_views():
    x = np.arange(10, dtype=np.uint8)[:, None, None, None] * np.ones((1, 4, 4, 3), np.uint8)
    y = np.arange(10) % 3
    ds = IndexedDataset(x, y, 4, 3, augment=None, seed=0)
    assert len(ds) == 2  # the partial batch is dropped: static shapes
    seen = []
    for i in range(len(ds)):
        images, labels, quality = ds[i]
        idx = ds.batch_indices(i)
        # Raw pixels: uint8 stays uint8 (the model scales and standardises).
        assert images.shape == (4, 4, 4, 3) and images.dtype == np.uint8
        np.testing.assert_array_equal(labels, y[idx])
        np.testing.assert_array_equal(images[:, 0, 0, 0], idx)
        np.testing.assert_array_equal(quality, 1.0)
        seen.extend(idx)
    assert len(set(seen)) == 8
    order = ds.order.copy()
    ds.on_epoch_end()
    assert not np.array_equal(order, ds.order)
    assert ds.label_quality.shape == (10, 1)  # samples x networks
    ds.label_quality[:, 0] = np.linspace(0, 1, 10)
    _, _, quality = ds[0]
    np.testing.assert_allclose(quality, ds.label_quality[ds.batch_indices(0), 0])
    view = ds.eval_view(batch_size=4)
    assert len(view) == 3 and view[2][0].shape[0] == 2  # every sample, in order
    floats = IndexedDataset(x.astype(np.float64) / 255, y, 4, 3, augment=None)
    assert floats[0][0].dtype == np.float32  # floats come as float32, unscaled
    assert floats[0][0].max() <= 1.0
    with pytest.raises(ValueError, match="larger than the 10"):
        IndexedDataset(x, y, 16)
    with pytest.raises(ValueError, match="augment"):
        IndexedDataset(x, y, 4, augment="strong")
    with pytest.raises(ValueError, match="out of range"):
        IndexedDataset(x, y, 4, num_classes=2)



def test_label_quality_is_samples_by_networks_and_old_checkpoints_load():
    from keras_sanm.data import CoDivideData
    from keras_sanm.data.indexed_dataset import restore_sampling_state, sampling_state

    x = np.random.default_rng(0).integers(0, 256, (12, 4, 4, 3)).astype(np.uint8)
    y = np.arange(12) % 3
    pairs = CoDivideData(x, y, 4, seed=0)
    assert pairs.label_quality.shape == (12, 2)
    state = sampling_state(pairs)
    quality = np.random.default_rng(1).random((12, 2)).astype(np.float32)
    # Written before the one layout: networks x samples, and (N,) for one network.
    restore_sampling_state(pairs, {**state, "label_quality": quality.T})
    np.testing.assert_array_equal(pairs.label_quality, quality)
    single = IndexedDataset(x, y, 4, 3)
    restore_sampling_state(single, {**sampling_state(single), "label_quality": quality[:, 0]})
    assert single.label_quality.shape == (12, 1)
    np.testing.assert_array_equal(single.quality_of(np.array([3, 5])), quality[[3, 5], 0])
