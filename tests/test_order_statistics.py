"""`kth_largest` (CDR's threshold without a sort) against NumPy's sort, on every backend."""

import keras
import numpy as np
import pytest
from keras import ops

from keras_sanm.methods.cdr.order_statistics import kth_largest


def by_sort(values, k):
    return np.sort(values)[len(values) - k]


@pytest.mark.parametrize("n", [1, 2, 9, 5000])
def test_the_kth_largest_is_the_sorts_element_ties_and_zeros_included(n):
    rng = np.random.default_rng(n)
    values = (np.abs(rng.normal(size=n)) * 10.0 ** rng.integers(-30, 30, n)).astype("float32")
    values[: n // 3] = 0.0  # many zeros (unused kernel entries)
    if n > 8:
        values[4:8] = values[-1]  # ties at one value
    for k in sorted({1, 2, n // 3, n // 2, n - 1, n} & set(range(1, n + 1))):
        assert float(ops.convert_to_numpy(kth_largest(values, k))) == by_sort(values, k), k
    # Denormals and the largest finite float keep their order too.
    extremes = np.array([1e-45, 3e-39, 0.0, 3.4e38, 1.0], "float32")
    for k in range(1, 6):
        assert float(ops.convert_to_numpy(kth_largest(extremes, k))) == by_sort(extremes, k)


def test_half_precision_values_and_a_tensor_k_in_a_compiled_function():
    rng = np.random.default_rng(0)
    values = np.abs(rng.normal(size=1000)).astype("float16")
    threshold = kth_largest(values, 250)
    assert keras.backend.standardize_dtype(threshold.dtype) == "float16"
    assert float(ops.convert_to_numpy(threshold)) == float(by_sort(values, 250))
    with pytest.raises(ValueError, match="float16, bfloat16 or float32"):
        kth_largest(values.astype("float64"), 1)  # would be rounded: refused

    class Threshold(keras.layers.Layer):  # traced by the backend's compiler in predict
        def call(self, x):
            k = ops.cast(ops.floor(0.3 * ops.cast(ops.shape(x)[1], "float32")), "int32")
            return ops.expand_dims(kth_largest(ops.reshape(x, (-1,)), k), 0)

    inputs = keras.Input((1000,), batch_size=1)
    model = keras.Model(inputs, Threshold()(inputs))
    got = model.predict(values.astype("float32")[None], verbose=0)
    assert float(got[0]) == float(by_sort(values.astype("float32"), 300))
