"""`label_quality` and `find_label_issues` on a single-network method."""

import keras
import numpy as np
import pytest

import keras_sanm

from conftest import learnable_problem, small_cnn


def planted_errors(n, count, seed):
    """A learnable problem with `count` labels moved to another class, and a CE model
    trained six epochs on them."""
    x, y = learnable_problem(n=n)
    rng = np.random.default_rng(seed)
    noisy = y.copy()
    planted = rng.choice(len(y), count, replace=False)
    noisy[planted] = (y[planted] + 1 + rng.integers(0, 3, count)) % 4
    model = keras_sanm.wrap(small_cnn(), method="ce", sanm=False, seed=0)
    model.compile(optimizer=keras.optimizers.SGD(0.05, momentum=0.9))
    model.fit(x, noisy, batch_size=32, epochs=6, verbose=0)
    return x, y, noisy, planted, model


def test_cross_entropy_model_ranks_planted_errors_first():
    x, y, noisy, planted, model = planted_errors(256, 40, seed=3)
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


def test_label_issue_table_is_one_row_per_sample_worst_first():
    import pandas as pd
    x, y, noisy, planted, model = planted_errors(200, 30, seed=5)
    names = ["red", "green", "blue", "dark"]
    table = keras_sanm.find_label_issues(model, x, noisy, return_table=True, class_names=names)
    assert isinstance(table, pd.DataFrame) and len(table) == 200
    assert list(table.columns) == ["index", "given_label", "suggested_label", "label_quality",
                                   "is_label_issue", "given_name", "suggested_name"]
    assert sorted(table["index"]) == list(range(200))
    quality = table["label_quality"].to_numpy()
    assert np.all(np.diff(quality) >= 0)  # worst first
    np.testing.assert_allclose(quality, model.label_quality(x, noisy)[table["index"]], atol=1e-6)
    np.testing.assert_array_equal(table["given_label"], noisy[table["index"]])
    suggested = model.predict_proba(x).argmax(1)
    np.testing.assert_array_equal(table["suggested_label"], suggested[table["index"]])
    np.testing.assert_array_equal(table["is_label_issue"], quality <= 0.5)
    assert table["given_name"].iloc[0] == names[table["given_label"].iloc[0]]
    # The issues are the index API's answer, and the worst rows are mostly planted errors
    # whose suggested label is the true one.
    issues = keras_sanm.find_label_issues(model, x, noisy)
    np.testing.assert_array_equal(table["index"][table["is_label_issue"]], issues)
    worst = table.head(20)
    assert np.isin(worst["index"], planted).mean() > 0.8
    assert (worst["suggested_label"].to_numpy() == y[worst["index"]]).mean() > 0.7
    # A dataset gives the same table (read once, in its order).
    tf = pytest.importorskip("tensorflow")
    dataset = tf.data.Dataset.from_tensor_slices((x, noisy)).batch(50)
    from_dataset = keras_sanm.find_label_issues(model, dataset, return_table=True)
    np.testing.assert_array_equal(from_dataset["index"], table["index"])
    with pytest.raises(ValueError, match="threshold"):
        keras_sanm.find_label_issues(model, x, noisy, threshold=None, return_table=True)
    with pytest.raises(ValueError, match="4 classes"):
        keras_sanm.find_label_issues(model, x, noisy, return_table=True, class_names=["a"])
    with pytest.raises(ValueError, match="return_table"):
        keras_sanm.find_label_issues(model, x, noisy, class_names=names)
