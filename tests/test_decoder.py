import keras
import numpy as np
import pytest
from keras import ops

from keras_sanm import backbones
from keras_sanm.backbones.feature_map import find_feature_layer
from keras_sanm.sanm.decoder import ReconstructionDecoder, decoder_layout, reconstruction_loss


def test_reference_layout_preact_resnet18():
    decoder = ReconstructionDecoder((32, 32, 3))
    out = decoder(ops.zeros((2, 4, 4, 512)))
    assert tuple(out.shape) == (2, 32, 32, 3)
    convs = decoder.conv_layers
    assert [c.filters for c in convs] == [256, 128, 3]
    assert [tuple(c.kernel_size) for c in convs] == [(4, 4), (6, 6), (4, 4)]
    assert [tuple(c.strides) for c in convs] == [(2, 2), (1, 1), (2, 2)]
    assert all(c.activation is keras.activations.linear and c.use_bias for c in convs)
    assert decoder.count_params() == (512 * 256 * 16 + 256) + (256 * 128 * 36 + 128) + (128 * 3 * 16 + 3)


@pytest.mark.parametrize("channels,filters", [(2048, [256, 128, 3]), (512, [256, 128, 3]),
                                              (128, [64, 32, 3]), (16, [8, 8, 3])])
def test_hidden_channels_follow_the_reference_capped_by_the_encoder(channels, filters):
    decoder = ReconstructionDecoder((32, 32, 3))
    decoder.build((None, 4, 4, channels))
    assert [c.filters for c in decoder.conv_layers] == filters
    assert ReconstructionDecoder((32, 32, 3), filters=(32, 16)).get_config()["filters"] == (32, 16)


@pytest.mark.parametrize(
    "feature_shape,image_shape",
    [((2, 2, 128), (32, 32, 3)), ((7, 7, 2048), (224, 224, 3)), ((4, 4, 16), (16, 16, 3)),
     ((2, 2, 8), (8, 8, 1)), ((1, 1, 8), (8, 8, 3)), ((5, 3, 8), (40, 24, 3))],
)
def test_decoder_reaches_image_shape(feature_shape, image_shape):
    decoder = ReconstructionDecoder(image_shape)
    assert tuple(decoder(ops.zeros((1,) + feature_shape)).shape) == (1,) + image_shape


@pytest.mark.parametrize("factory", [backbones.PreActResNet18, backbones.CNN9])
def test_decoder_on_backbone_feature_maps(factory):
    model = factory(10)
    layer = find_feature_layer(model)
    assert layer.name == "feature_map"
    decoder = ReconstructionDecoder((32, 32, 3))
    assert tuple(decoder(ops.zeros((1,) + tuple(layer.output.shape[1:]))).shape) == (1, 32, 32, 3)


def test_layout_and_loss():
    assert decoder_layout((7, 7), (224, 224))[0] == ((6, 6), (3, 3), (1, 1))
    with pytest.raises(ValueError, match="only upsamples"):
        decoder_layout((8, 8), (4, 4))
    a = np.ones((2, 4, 4, 3), "float32")
    assert float(reconstruction_loss(a, np.zeros_like(a))) == pytest.approx(1.0)


@pytest.mark.parametrize(
    "feature_shape,image_shape",
    [((4, 4, 32), (32, 32, 3)), ((7, 7, 16), (224, 224, 3)), ((2, 2, 8), (32, 32, 3)),
     ((5, 3, 8), (40, 24, 3)), ((1, 1, 8), (8, 8, 3))],
)
def test_subpixel_decoder_equals_native(feature_shape, image_shape):
    native = ReconstructionDecoder(image_shape, implementation="native")
    subpixel = ReconstructionDecoder(image_shape, implementation="subpixel")
    native.build((None,) + feature_shape)
    subpixel.build((None,) + feature_shape)
    rng = np.random.default_rng(0)
    for variable in native.weights:  # random biases too, so they are checked
        variable.assign(rng.normal(size=variable.shape).astype("float32") * 0.1)
    subpixel.set_weights(native.get_weights())
    features = rng.normal(size=(2,) + feature_shape).astype("float32")
    expected = ops.convert_to_numpy(native(features))
    np.testing.assert_allclose(ops.convert_to_numpy(subpixel(features)), expected, rtol=1e-4, atol=1e-4)


def test_subpixel_layer_rejects_unknown_implementation():
    from keras_sanm.sanm.transposed_conv import SubPixelConv2DTranspose

    with pytest.raises(ValueError, match="implementation"):
        SubPixelConv2DTranspose(4, 3, implementation="fast")
