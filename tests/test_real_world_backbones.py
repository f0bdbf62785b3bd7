"""VGG-19 (Animal-10N), ResNet-50 (Clothing1M) and vision-transformer tokens as SANM bases.

Each wraps, trains a step with SANM, saves and loads. Random weights only:
nothing is downloaded.
"""

import keras
import numpy as np
import pytest

import keras_sanm
from keras_sanm import backbones
from keras_sanm.backbones.feature_map import build_feature_network, find_feature_layer, token_grid

pytestmark = pytest.mark.slow  # end-to-end: `pytest -m "not slow"` skips them

# A backbone made of Keras' own layers trains the same way on every backend;
# wrap's path under it is tested per backend with the other models (and the
# token grid below, which is the package's own graph, runs on every backend).
KERAS_LAYERS_ONLY = pytest.mark.only_backend(
    "torch", reason="Keras' own layers; wrap's path is tested per backend elsewhere")


def images_and_labels(n, size, classes, seed=0):
    rng = np.random.default_rng(seed)
    return (rng.integers(0, 256, (n, size, size, 3)).astype("uint8"),
            rng.integers(0, classes, n))


def wrap_train_save_load(base, x, y, tmp_path, batch_size=8):
    model = keras_sanm.wrap(base, seed=0)
    model.compile()
    history = model.fit(x, y, batch_size=batch_size, epochs=1, verbose=0).history
    assert np.isfinite(history["loss"][-1]) and history["reconstruction_loss"][-1] > 0
    model.save(tmp_path / "model.keras")
    loaded = keras_sanm.load_model(str(tmp_path / "model.keras"))
    np.testing.assert_allclose(loaded.predict(x[:4], verbose=0), model.predict(x[:4], verbose=0),
                               rtol=1e-5, atol=1e-5)
    return model


@KERAS_LAYERS_ONLY
def test_vgg19_with_batch_norm_wraps_trains_saves_and_loads(tmp_path):
    base = backbones.VGG19(5, (64, 64, 3), width=4, dense_units=32)
    assert tuple(base.get_layer("feature_map").output.shape) == (None, 2, 2, 32)
    assert sum(isinstance(layer, keras.layers.Conv2D) for layer in base.layers) == 16
    assert sum(isinstance(layer, keras.layers.BatchNormalization) for layer in base.layers) == 16
    assert find_feature_layer(base).name == "feature_map"
    x, y = images_and_labels(16, 64, 5)
    wrap_train_save_load(base, x, y, tmp_path)


@KERAS_LAYERS_ONLY
def test_vgg19_without_batch_norm_is_the_keras_applications_layout():
    ours = backbones.VGG19(10, (64, 64, 3), batch_norm_layers=False)
    theirs = keras.applications.VGG19(include_top=False, weights=None, input_shape=(64, 64, 3))
    kernels = [tuple(layer.kernel.shape) for layer in ours.layers
               if isinstance(layer, keras.layers.Conv2D)]
    assert kernels == [tuple(layer.kernel.shape) for layer in theirs.layers
                       if isinstance(layer, keras.layers.Conv2D)]
    assert tuple(ours.get_layer("feature_map").output.shape) == tuple(theirs.output.shape)
    with pytest.raises(ValueError, match="batch_norm_layers=False"):
        backbones.VGG19(10, weights="imagenet")  # refused before any download
    assert backbones.get("vgg19", 3, (64, 64, 3), width=2).count_params() < ours.count_params()


@KERAS_LAYERS_ONLY
def test_resnet50_from_keras_applications_wraps_trains_saves_and_loads(tmp_path):
    base = backbones.ResNet50(14, (64, 64, 3))
    assert tuple(base.get_layer("feature_map").output.shape) == (None, 2, 2, 2048)
    assert base.output.shape[-1] == 14 and base.get_layer("logits").activation.__name__ == "linear"
    x, y = images_and_labels(4, 64, 14)  # one step of 4: a 25 M-parameter network
    wrap_train_save_load(base, x, y, tmp_path, batch_size=4)


def tiny_vision_transformer(classes=4, size=32, patch=4, dim=16, class_token=True):
    """Patch embedding, a class token, two token-wise blocks, the class token's head."""
    inputs = keras.Input((size, size, 3))
    patches = keras.layers.Conv2D(dim, patch, strides=patch, name="patch_embed")(inputs)
    tokens = keras.layers.Reshape(((size // patch) ** 2, dim), name="tokens")(patches)
    if class_token:
        pooled = keras.layers.GlobalAveragePooling1D(name="pool")(tokens)
        cls = keras.layers.Reshape((1, dim), name="cls")(keras.layers.Dense(dim)(pooled))
        tokens = keras.layers.Concatenate(axis=1, name="with_cls")([cls, tokens])
    for k in range(2):
        mixed = keras.layers.Dense(dim, activation="gelu", name=f"block{k}_mlp")(tokens)
        tokens = keras.layers.LayerNormalization(name=f"block{k}_norm")(
            keras.layers.Add(name=f"block{k}_add")([tokens, mixed]))
    summary = keras.layers.GlobalAveragePooling1D(name="head_pool")(tokens)
    return keras.Model(inputs, keras.layers.Dense(classes, name="logits")(summary))


def test_token_grids_are_recognised():
    assert token_grid(keras.KerasTensor((None, 64, 16))) == (8, 8, 0)
    assert token_grid(keras.KerasTensor((None, 197, 768))) == (14, 14, 1)  # ViT-B/16 + class
    assert token_grid(keras.KerasTensor((None, 10, 16))) == (3, 3, 1)
    assert token_grid(keras.KerasTensor((None, 12, 16))) is None  # neither 12 nor 11 square
    assert token_grid(keras.KerasTensor((None, 4, 4, 16))) is None


@pytest.mark.parametrize("class_token", [
    True, pytest.param(False, marks=pytest.mark.only_backend(
        "torch", reason="the reshape is the class-token case's without the slice"))])
def test_vision_transformer_tokens_become_the_feature_map(tmp_path, class_token):
    base = tiny_vision_transformer(class_token=class_token)
    # The last token layer, not the patch embedding (the last rank-4 tensor).
    assert find_feature_layer(base).name == "block1_norm"
    features, _ = build_feature_network(base).outputs
    assert tuple(features.shape) == (None, 8, 8, 16)
    x, y = images_and_labels(16, 32, 4)
    model = wrap_train_save_load(base, x, y, tmp_path)
    # The grid is the tokens in row-major patch order (the class token dropped).
    network = model.network
    grid, tokens = keras.Model(network.input, [network.outputs[0],
                                               base.get_layer("block1_norm").output])(x[:2])
    skip = 1 if class_token else 0
    np.testing.assert_allclose(keras.ops.convert_to_numpy(grid).reshape(2, 64, 16),
                               keras.ops.convert_to_numpy(tokens)[:, skip:], rtol=1e-6)
    with pytest.raises(ValueError, match="square grid"):
        keras_sanm.wrap(base, feature_layer="logits")
