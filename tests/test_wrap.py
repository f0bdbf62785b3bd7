import keras
import numpy as np
import pytest
from keras import layers

import keras_sanm

from conftest import small_cnn


def weights(model):
    return [np.array(keras.ops.convert_to_numpy(v)) for v in model.trainable_variables]


def test_functional_finds_last_spatial_map():
    model = keras_sanm.wrap(small_cnn())
    assert model.network.outputs[0].shape[1:] == (8, 8, 16)
    assert model.network.outputs[0]._keras_history[0].name == "relu2"


def test_sequential_and_feature_layer():
    seq = keras.Sequential([
        keras.Input((16, 16, 3)), layers.Conv2D(8, 3, padding="same", name="c1"),
        layers.MaxPooling2D(), layers.Conv2D(8, 3, padding="same", name="c2"),
        layers.GlobalAveragePooling2D(), layers.Dense(3),
    ])
    model = keras_sanm.wrap(seq)
    assert tuple(model.network.outputs[0].shape[1:]) == (8, 8, 8)
    chosen = keras_sanm.wrap(seq, feature_layer="c1")
    assert tuple(chosen.network.outputs[0].shape[1:]) == (16, 16, 8)
    out = chosen.predict(np.zeros((5, 16, 16, 3), "float32"), verbose=0)
    assert out.shape == (5, 3)


def test_softmax_output_detected():
    inputs = keras.Input((8, 8, 3))
    x = layers.Conv2D(4, 3)(inputs)
    x = layers.GlobalAveragePooling2D()(x)
    model = keras_sanm.wrap(keras.Model(inputs, layers.Dense(3, activation="softmax")(x)))
    assert model.from_logits is False
    assert keras_sanm.wrap(small_cnn()).from_logits is True


def test_wrap_errors():
    dense = keras.Sequential([keras.Input((16,)), layers.Dense(4)])
    with pytest.raises(ValueError, match="no spatial feature map.*feature_layer"):
        keras_sanm.wrap(dense)
    keras_sanm.wrap(dense, sanm=False)  # plain CE needs no feature map
    with pytest.raises(ValueError, match="Unknown method 'mixup'"):
        keras_sanm.wrap(small_cnn(), method="mixup")
    with pytest.raises(ValueError, match="'nope' is not a layer"):
        keras_sanm.wrap(small_cnn(), feature_layer="nope")
    with pytest.raises(ValueError, match="must output"):
        keras_sanm.wrap(small_cnn(), feature_layer="logits")
    with pytest.raises(ValueError, match="num_classes=10 disagrees"):
        keras_sanm.wrap(small_cnn(num_classes=4), num_classes=10)

    class Sub(keras.Model):
        def __init__(self):
            super().__init__()
            self.conv = layers.Conv2D(4, 3)
            self.head = layers.Dense(3)

        def call(self, x):
            return self.head(keras.ops.mean(self.conv(x), axis=(1, 2)))

    with pytest.raises(ValueError, match="Functional"):
        keras_sanm.wrap(Sub(), num_classes=3)


@pytest.mark.parametrize(
    "mutate,message",
    [
        (lambda x, y: (x, np.where(y == 0, 4, y)), "out of range for 4 classes"),
        (lambda x, y: (x, y - 1), ">= 0"),
        (lambda x, y: (x, y.astype("float32")), "must be integers"),
        (lambda x, y: (x, y[:-3]), "Got 61 labels for 64 images"),
        (lambda x, y: (np.where(np.arange(64)[:, None, None, None] == 5, np.nan, x), y),
         "NaN or Inf.*sample 5"),
        (lambda x, y: (x[..., 0], y), "rank 3"),
        (lambda x, y: (x[:, :8], y), "expects"),
    ],
)
def test_bad_input_refused_before_any_step(mutate, message):
    rng = np.random.default_rng(0)
    x = rng.normal(size=(64, 16, 16, 3)).astype("float32")
    y = np.arange(64) % 4
    model = keras_sanm.wrap(small_cnn())
    model.compile()
    before = weights(model)
    x_bad, y_bad = mutate(x, y)
    with pytest.raises(ValueError, match=message):
        model.fit(x_bad, y_bad, batch_size=16, epochs=1, verbose=0)
    for a, b in zip(before, weights(model)):
        np.testing.assert_array_equal(a, b)


def test_compile_refuses_loss_and_unknown_metric():
    model = keras_sanm.wrap(small_cnn())
    with pytest.raises(ValueError, match="own loss"):
        model.compile(loss="mse")
    with pytest.raises(ValueError, match="Unsupported metric"):
        model.compile(metrics=["auc"])
    model.compile(metrics=["accuracy"])


def _network_weights(model, k):
    return [np.array(keras.ops.convert_to_numpy(v)) for v in model.networks[k].weights]


def _same(a, b):
    return all(np.array_equal(x, y) for x, y in zip(a, b, strict=True))


@pytest.mark.parametrize("sanm", [False, True])
def test_second_network_starts_fresh_or_as_a_copy(sanm):
    base = small_cnn()
    fresh = keras_sanm.wrap(base, method="dividemix", sanm=sanm, seed=0)
    assert not _same(_network_weights(fresh, 0), _network_weights(fresh, 1))
    copied = keras_sanm.wrap(base, method="dividemix", sanm=sanm, seed=0,
                             second_network="copy")
    assert _same(_network_weights(copied, 0), _network_weights(copied, 1))
    assert _same(_network_weights(copied, 1), [keras.ops.convert_to_numpy(v)
                                                 for v in base.weights])
    with pytest.raises(ValueError, match="second_network must be one of"):
        keras_sanm.wrap(base, method="dividemix", second_network="same")


def test_a_base_trained_by_pretrain_gives_both_networks_its_weights():
    base = small_cnn()
    images = np.random.default_rng(0).integers(0, 256, (32, 16, 16, 3), dtype="uint8")
    keras_sanm.pretrain(base, images, epochs=1, batch_size=16, verbose=0, seed=0)
    model = keras_sanm.wrap(base, method="coteaching", sanm=False, seed=0)
    assert _same(_network_weights(model, 0), _network_weights(model, 1))
    # Said otherwise, the user's choice holds.
    fresh = keras_sanm.wrap(base, method="coteaching", sanm=False, second_network="fresh")
    assert not _same(_network_weights(fresh, 0), _network_weights(fresh, 1))
