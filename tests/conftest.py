"""Shared fixtures: small models and data so each backend's run stays short."""

import keras
import numpy as np
import pytest
from keras import layers


def small_cnn(input_shape=(16, 16, 3), num_classes=4, name="small_cnn"):
    inputs = keras.Input(input_shape)
    x = layers.Conv2D(8, 3, padding="same", activation="relu", name="conv1")(inputs)
    x = layers.MaxPooling2D(name="pool1")(x)
    x = layers.Conv2D(16, 3, padding="same", name="conv2")(x)
    x = layers.BatchNormalization(name="bn2")(x)
    x = layers.ReLU(name="relu2")(x)
    x = layers.GlobalAveragePooling2D(name="gap")(x)
    return keras.Model(inputs, layers.Dense(num_classes, name="logits")(x), name=name)


def learnable_problem(n=256, size=16, num_classes=4, seed=0):
    """Noise images with a square at a random place; its colour gives the class."""
    rng = np.random.default_rng(seed)
    labels = rng.integers(0, num_classes, n)
    images = rng.normal(0, 0.3, (n, size, size, 3)).astype("float32")
    colours = np.array([[2, 0, 0], [0, 2, 0], [0, 0, 2], [-2, -2, -2]], "float32")
    side = size // 2
    for i, c in enumerate(labels):
        r, col = rng.integers(0, size - side + 1, 2)
        images[i, r : r + side, col : col + side, :] += colours[c % 4]
    return images, labels


@pytest.fixture
def problem():
    return learnable_problem()


@pytest.fixture(autouse=True)
def _seed():
    keras.utils.set_random_seed(0)
    yield
