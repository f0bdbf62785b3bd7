import numpy as np
import pytest
from keras import ops

from keras_sanm.sanm import masking
from keras_sanm.sanm.noisy_mask import NoisyMask


def np_(x):
    return ops.convert_to_numpy(x)


def one_hot_feature_map(batch, h, w, hot, cold=None, channels=4):
    """Feature maps with one hot cell (and optionally one cold cell, value 0)."""
    f = np.full((batch, h, w, channels), 1.0, "float32")
    for b, (r, c) in enumerate(hot):
        f[b, r, c] = 5.0
    if cold is not None:
        for b, (r, c) in enumerate(cold):
            f[b, r, c] = 0.0
    return f


def test_activation_map_range_and_peak_cell():
    f = one_hot_feature_map(1, 4, 4, [(1, 2)])
    q = np_(masking.activation_map(f, (32, 32)))
    assert q.shape == (1, 32, 32)
    assert q.min() == 0 and q.max() == 255
    assert np.all(q == np.floor(q))
    r, c, _, _ = (int(v[0]) for v in masking.peak_valley_locations(q))
    # Interior cell k of a 4-cell axis maps near pixel 8k+3 / 8k+4.
    assert r in (11, 12) and c in (19, 20)


def test_first_occurrence_on_ties():
    q = np.zeros((1, 4, 4), "float32")
    q[0, 1, 1] = q[0, 2, 3] = 255.0
    pr, pc, vr, vc = (int(v[0]) for v in masking.peak_valley_locations(q))
    assert (pr, pc) == (1, 1)
    assert (vr, vc) == (0, 0)


def test_box_sizes_round_half_even_and_clamp():
    h, w = masking.box_sizes(np.array([0.02, 0.1, 5.0], "float32"),
                             np.array([1.0, 1.0, 1.0], "float32"), (32, 32), 0.5)
    # area 10.24 -> 3.2 -> 3; area 51.2 -> 7.16 -> 7; huge -> clamp at 31.
    assert list(np_(h)) == [3, 7, 31] and list(np_(w)) == [3, 7, 31]


def test_place_boxes_corner_and_center_clamped():
    rows = np.array([0, 30, 10], "int32")
    cols = np.array([5, 31, 0], "int32")
    bh = np.array([4, 4, 6], "int32")
    bw = np.array([3, 5, 6], "int32")
    t, left = masking.place_boxes(rows, cols, bh, bw, (32, 32), "corner")
    assert list(np_(t)) == [0, 28, 10] and list(np_(left)) == [5, 27, 0]
    t, left = masking.place_boxes(rows, cols, bh, bw, (32, 32), "center")
    assert list(np_(t)) == [0, 28, 7] and list(np_(left)) == [4, 27, 0]
    with pytest.raises(ValueError, match="anchor"):
        masking.place_boxes(rows, cols, bh, bw, (32, 32), "middle")


def boxes_from_masked(images, masked):
    """Bounding boxes of the changed pixels, per sample."""
    changed = np.any(np_(masked) != images, axis=-1)
    out = []
    for m in changed:
        rr, cc = np.nonzero(m)
        out.append((rr.min(), cc.min(), rr.max() - rr.min() + 1, cc.max() - cc.min() + 1, m.sum()))
    return out


@pytest.mark.parametrize("anchor", ["corner", "center"])
def test_noisy_mask_geometry(anchor):
    batch = 16
    rng = np.random.default_rng(0)
    images = rng.normal(size=(batch, 32, 32, 3)).astype("float32") + 10.0  # fill is in [0,1)
    hot = [(int(rng.integers(4)), int(rng.integers(4))) for _ in range(batch)]
    features = one_hot_feature_map(batch, 4, 4, hot)
    quality = np.linspace(0, 1, batch).astype("float32")
    layer = NoisyMask(anchor=anchor, seed=3)
    out = layer(images, features, quality)
    ratio = np_(out["peak_ratio"])
    assert np.all(ratio >= 0.02 + 0.03 * (1 - quality) - 1e-6)
    assert np.all(ratio <= 0.07 + 0.03 * (1 - quality) + 1e-6)
    q = np_(masking.activation_map(features, (32, 32)))
    pr, pc, _, _ = (np_(v) for v in masking.peak_valley_locations(q))
    for b, (top, left, bh, bw, count) in enumerate(boxes_from_masked(images, out["peak_images"])):
        box = np_(out["peak_box"])[b]
        assert (top, left, bh, bw) == tuple(box)
        assert count == bh * bw  # a solid rectangle: nothing outside the box changed
        area = 0.5 * ratio[b] * 32 * 32
        assert abs(bh * bw - area) <= 2 * max(bh, bw) + 1
        assert 0.8 / 1.25 - 0.35 <= bh / bw <= 1.25 / 0.8 + 0.35
        assert top + bh <= 32 and left + bw <= 32 and top >= 0 and left >= 0
        if anchor == "corner":
            assert top == min(pr[b], 32 - bh) and left == min(pc[b], 32 - bw)
        else:
            assert top == np.clip(pr[b] - bh // 2, 0, 32 - bh)
        fill = np_(out["peak_images"])[b, top, left]
        assert np.all((fill >= 0) & (fill < 1))
        assert np.allclose(np_(out["peak_images"])[b, top:top + bh, left:left + bw], fill)


def test_area_shrinks_as_quality_grows():
    batch = 256
    images = np.zeros((batch, 32, 32, 3), "float32")
    features = np.random.default_rng(1).normal(size=(batch, 4, 4, 8)).astype("float32")
    layer = NoisyMask(seed=0)
    noisy = np_(layer(images, features, np.zeros(batch, "float32"))["peak_box"])
    clean = np_(layer(images, features, np.ones(batch, "float32"))["peak_box"])
    assert (noisy[:, 2] * noisy[:, 3]).mean() > 1.5 * (clean[:, 2] * clean[:, 3]).mean()


def test_valley_box_differs_from_peak_box():
    features = one_hot_feature_map(2, 4, 4, [(0, 0), (3, 3)], cold=[(3, 3), (0, 0)])
    images = np.full((2, 32, 32, 3), 5.0, "float32")
    out = NoisyMask(seed=0)(images, features, np.ones(2, "float32"))
    peak, valley = np_(out["peak_box"]), np_(out["valley_box"])
    assert peak[0, 0] == 0 and peak[0, 1] == 0
    assert valley[0, 0] > 16 and valley[0, 1] > 16
    assert not np.array_equal(peak[:, :2], valley[:, :2])
    # Shared draws: same box size for both (CIFAR reference).
    assert np.array_equal(peak[:, 2:], valley[:, 2:])


def test_same_seed_same_masks_and_different_seed_differs():
    features = np.random.default_rng(2).normal(size=(8, 4, 4, 8)).astype("float32")
    images = np.zeros((8, 32, 32, 3), "float32")
    w = np.full(8, 0.3, "float32")
    a = NoisyMask(seed=7)(images, features, w)
    b = NoisyMask(seed=7)(images, features, w)
    c = NoisyMask(seed=8)(images, features, w)
    assert np.array_equal(np_(a["peak_images"]), np_(b["peak_images"]))
    assert not np.array_equal(np_(a["peak_images"]), np_(c["peak_images"]))


def test_modulated_targets_sum_to_one():
    targets = np.eye(10, dtype="float32")[[0, 3, 9]]
    soft = np.full((1, 10), 0.1, "float32")
    soft[0, 4] = 0.1 + 1e-3
    soft /= soft.sum()
    all_targets = np.concatenate([targets, soft])
    ratio = np.array([0.05, 0.1, 0.02, 0.5], "float32")
    out = np_(masking.modulate_labels(all_targets, ratio))
    np.testing.assert_allclose(out.sum(axis=1), 1.0, atol=1e-6)
    np.testing.assert_allclose(out[0], [0.95] + [0.05 / 9] * 9, atol=1e-6)
    assert out[3].min() < 0  # the reference keeps negative entries (B4)...
    clipped = np_(masking.modulate_labels(all_targets, ratio, clip_negative=True))
    assert clipped.min() >= 0  # ...the option removes them
    np.testing.assert_allclose(clipped.sum(axis=1), 1.0, atol=1e-6)


def test_bad_arguments():
    with pytest.raises(ValueError, match="anchor"):
        NoisyMask(anchor="left")
    with pytest.raises(ValueError, match="low <= high"):
        NoisyMask(ratio_range=(0.1, 0.01))
    with pytest.raises(ValueError, match="feature"):
        masking.activation_map(np.zeros((2, 4, 4), "float32"), (8, 8))


def test_aspect_specs_name_a_fixed_or_a_per_sample_uniform_ratio():
    assert masking.aspect_range(masking.DEFAULT_MASK_ASPECT) == (0.8, 1.25)
    assert masking.aspect_range("uniform:1.25") == (0.8, 1.25)  # U(d, 1/d) either way
    assert masking.aspect_range("fixed:2") == masking.aspect_range(2.0) == (2.0, 2.0)
    assert masking.aspect_range("0.5") == (0.5, 0.5)
    for bad in ("uniform", "uniform:0", "fixed:-1", "square", "gauss:0.8", float("nan"), 0.0):
        with pytest.raises(ValueError, match="mask aspect"):
            masking.aspect_range(bad)


@pytest.mark.parametrize("spec", ["fixed:2", "fixed:1", "uniform:0.5"])
def test_boxes_have_the_shape_the_aspect_spec_states(spec):
    # Large boxes (ratio 0.3: about 150 pixels) so rounding moves h / w little.
    batch = 64
    low, high = masking.aspect_range(spec)
    images = np.full((batch, 32, 32, 3), 5.0, "float32")
    features = np.random.default_rng(2).normal(size=(batch, 4, 4, 8)).astype("float32")
    layer = NoisyMask(ratio_range=(0.3, 0.3), quality_scale=0.0, aspect_range=(low, high),
                      seed=1)
    boxes = np_(layer(images, features, np.ones(batch, "float32"))["peak_box"])
    heights, widths = boxes[:, 2], boxes[:, 3]
    # Exact sizes from the formula at the stated ratio bounds.
    area = 0.5 * 0.3 * 32 * 32
    if low == high:
        assert np.all(heights == np.round(np.sqrt(area * low)))
        assert np.all(widths == np.round(np.sqrt(area / low)))
    else:  # one draw per sample: many shapes, all inside the stated range
        assert len({(h, w) for h, w in zip(heights, widths)}) > 5
        assert np.all(heights >= np.round(np.sqrt(area * low)))
        assert np.all(heights <= np.round(np.sqrt(area * high)))
        assert (heights > widths).any() and (heights < widths).any()
