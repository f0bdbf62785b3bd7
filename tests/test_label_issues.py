"""`label_quality` and `find_label_issues` on a single-network method."""

import keras
import numpy as np
import pytest

import keras_sanm

from conftest import learnable_problem, small_cnn


def test_cross_entropy_model_ranks_planted_errors_first():
    x, y = learnable_problem(n=256)
    rng = np.random.default_rng(3)
    noisy = y.copy()
    planted = rng.choice(len(y), 40, replace=False)
    noisy[planted] = (y[planted] + 1 + rng.integers(0, 3, 40)) % 4
    model = keras_sanm.wrap(small_cnn(), method="ce", sanm=False, seed=0)
    model.compile(optimizer=keras.optimizers.SGD(0.05, momentum=0.9))
    model.fit(x, noisy, batch_size=32, epochs=6, verbose=0)
    quality = model.label_quality(x, noisy)
    assert quality.shape == (256,) and np.all((0 <= quality) & (quality <= 1))
    ranked = keras_sanm.find_label_issues(model, x, noisy, threshold=None)
    assert np.isin(ranked[:20], planted).mean() > 0.9
    # 40 of 256 labels are wrong (15.6%).
    rate = keras_sanm.estimate_noise_rate(model, x, noisy)
    assert rate == pytest.approx(np.mean(quality < 0.5)) and 0.08 < rate < 0.3
    with pytest.raises(ValueError, match="wrap"):
        keras_sanm.find_label_issues(small_cnn(), x, noisy)
    with pytest.raises(ValueError):
        model.label_quality(x[..., 0], noisy)
