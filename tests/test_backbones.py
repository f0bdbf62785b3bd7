"""PreAct ResNet-18 against a PyTorch forward of the reference layout, same weights."""

import keras
import numpy as np
import pytest

from keras_sanm import backbones
from keras_sanm.backbones.layers import FusedBatchNormalization, NativeKernelConv2D
from keras_sanm.backend import CONV_DATA_FORMAT, gradients

torch = pytest.importorskip("torch")
nn = torch.nn


class TorchPreActBlock(nn.Module):
    """The reference pre-activation block: conv3x3 with padding=1 on every side."""

    def __init__(self, cin, cout, stride):
        super().__init__()
        self.bn1, self.bn2 = nn.BatchNorm2d(cin), nn.BatchNorm2d(cout)
        self.conv1 = nn.Conv2d(cin, cout, 3, stride, padding=1, bias=False)
        self.conv2 = nn.Conv2d(cout, cout, 3, 1, padding=1, bias=False)
        self.shortcut = (nn.Conv2d(cin, cout, 1, stride, bias=False)
                         if stride != 1 or cin != cout else None)

    def forward(self, x):
        activated = torch.relu(self.bn1(x))
        shortcut = activated if self.shortcut is None else self.shortcut(activated)
        out = self.conv2(torch.relu(self.bn2(self.conv1(activated))))
        return out + shortcut


class TorchPreActResNet18(nn.Module):
    def __init__(self, width, classes):
        super().__init__()
        self.stem_conv = nn.Conv2d(3, width, 3, 1, padding=1, bias=False)
        self.stem_bn = nn.BatchNorm2d(width)
        blocks, cin = [], width
        for s, (mult, stride) in enumerate(((1, 1), (2, 2), (4, 2), (8, 2))):
            for b in range(2):
                blocks.append((f"stage{s + 1}_block{b + 1}",
                               TorchPreActBlock(cin, width * mult, stride if b == 0 else 1)))
                cin = width * mult
        self.blocks = nn.ModuleDict(blocks)
        self.linear = nn.Linear(cin, classes)

    def forward(self, x):
        out = torch.relu(self.stem_bn(self.stem_conv(x)))
        for block in self.blocks.values():
            out = block(out)
        return self.linear(out.mean(dim=(2, 3)))


def _copy_weights(keras_model, torch_model, rng):
    """Keras weights into the torch network; random BN statistics on both sides."""

    def conv(name, module):
        kernel = keras.ops.convert_to_numpy(keras_model.get_layer(name).kernel)
        module.weight.data = torch.tensor(kernel.transpose(3, 2, 0, 1).copy())

    def bn(name, module):
        layer = keras_model.get_layer(name)
        values = [rng.uniform(0.5, 1.5, layer.gamma.shape), rng.normal(0, 0.1, layer.beta.shape),
                  rng.normal(0, 0.1, layer.moving_mean.shape),
                  rng.uniform(0.5, 1.5, layer.moving_variance.shape)]
        layer.set_weights([v.astype("float32") for v in values])
        for attr, value in zip(("weight", "bias", "running_mean", "running_var"), values):
            getattr(module, attr).data = torch.tensor(value, dtype=torch.float32)

    conv("stem_conv", torch_model.stem_conv)
    bn("stem_bn", torch_model.stem_bn)
    for name, block in torch_model.blocks.items():
        bn(f"{name}_bn1", block.bn1)
        bn(f"{name}_bn2", block.bn2)
        conv(f"{name}_conv1", block.conv1)
        conv(f"{name}_conv2", block.conv2)
        if block.shortcut is not None:
            conv(f"{name}_shortcut", block.shortcut)
    dense = keras_model.get_layer("logits")
    torch_model.linear.weight.data = torch.tensor(keras.ops.convert_to_numpy(dense.kernel).T.copy())
    torch_model.linear.bias.data = torch.tensor(keras.ops.convert_to_numpy(dense.bias))


@pytest.mark.parametrize("width", [4, 8])
def test_preact_resnet18_matches_reference_layout(width):
    rng = np.random.default_rng(0)
    model = backbones.PreActResNet18(10, (32, 32, 3), width=width)
    reference = TorchPreActResNet18(width, 10).eval()
    _copy_weights(model, reference, rng)
    images = rng.normal(size=(3, 32, 32, 3)).astype("float32")
    ours = keras.ops.convert_to_numpy(model(images, training=False))
    with torch.no_grad():
        theirs = reference(torch.tensor(images.transpose(0, 3, 1, 2))).numpy()
    np.testing.assert_allclose(ours, theirs, rtol=1e-4, atol=1e-4)
    # The check can fail: the stride-2 blocks' inputs are not symmetric, so a
    # one-pixel shift of the residual path changes the outputs.
    assert np.abs(theirs).max() > 1e-2


def test_width_sets_channels_and_feature_map():
    model = backbones.PreActResNet18(10, (32, 32, 3), width=16)
    assert tuple(model.get_layer("feature_map").output.shape) == (None, 4, 4, 128)
    stem = tuple(model.get_layer("stem_conv").output.shape)
    assert stem == ((None, 16, 32, 32) if CONV_DATA_FORMAT == "channels_first"
                    else (None, 32, 32, 16))
    assert backbones.get("preact_resnet18", 10, (32, 32, 3), width=8).count_params() < (
        model.count_params())
    with pytest.raises(ValueError, match="width"):
        backbones.PreActResNet18(10, width=0)
    with pytest.raises(ValueError, match="preact_resnet18, resnet18, vgg19 only"):
        backbones.get("small_cnn", 10, (32, 32, 3), width=16)


@pytest.mark.parametrize("size", [32, 64, 65])
def test_preact_resnet18_trains_at_larger_image_sizes(size):
    """A training step at width 4 from 64x64 inputs: with strided 1x1 shortcut
    convolutions PyTorch 2.13's CPU backward crashed the process here. The
    subsampled shortcut keeps the output sizes of a stride-2 convolution
    (odd sizes included)."""
    keras.utils.set_random_seed(0)
    model = backbones.PreActResNet18(4, (size, size, 3), width=4)
    model.compile(keras.optimizers.SGD(0.01),
                  keras.losses.SparseCategoricalCrossentropy(from_logits=True))
    rng = np.random.default_rng(0)
    images = rng.random((64, size, size, 3)).astype("float32")
    loss = model.train_on_batch(images, rng.integers(0, 4, 64))
    assert np.isfinite(float(np.asarray(loss).reshape(-1)[0]))
    assert tuple(model.get_layer("feature_map").output.shape)[1] == -(-size // 8)


@pytest.mark.only_backend("torch", "jax", reason="TensorFlow's CPU convolutions take "
                          "channels-last only")
@pytest.mark.parametrize("backbone", [backbones.PreActResNet18, backbones.ResNet18])
def test_channels_first_inside_computes_what_channels_last_does(backbone):
    """Same weights, same outputs, gradients and moving statistics in both layouts
    (on torch the channels-first one also takes the fused batch normalisation)."""
    rng = np.random.default_rng(0)
    images = rng.normal(size=(6, 32, 32, 3)).astype("float32")
    labels = keras.ops.one_hot(rng.integers(0, 10, 6), 10)
    models = [backbone(10, width=4, data_format=f) for f in ("channels_last", "channels_first")]
    models[1].set_weights(models[0].get_weights())
    assert models[1].get_layer("to_channels_first") is not None
    results = []
    for model in models:
        def loss():
            scores = model(images, training=True)
            return keras.ops.mean(keras.losses.categorical_crossentropy(
                labels, scores, from_logits=True))
        grads = gradients(loss, model.trainable_variables)
        model(images, training=True)  # a training call outside `gradients` (stateless on JAX)
        results.append(([keras.ops.convert_to_numpy(g) for g in grads],
                        keras.ops.convert_to_numpy(model(images, training=False)),
                        [keras.ops.convert_to_numpy(w) for w in model.non_trainable_weights]))
    for a, b in zip(results[0][0], results[1][0]):
        np.testing.assert_allclose(a, b, rtol=2e-3, atol=2e-5)
    np.testing.assert_allclose(results[0][1], results[1][1], rtol=1e-4, atol=1e-5)
    for a, b in zip(results[0][2], results[1][2]):  # moving means and variances
        np.testing.assert_allclose(a, b, rtol=1e-5, atol=1e-6)
    assert not np.allclose(results[0][2][0], 0.0)  # the training call moved them


def test_backbones_default_to_the_backends_faster_layout_and_check_it():
    model = backbones.PreActResNet18(10, width=4)
    first = any(layer.name == "to_channels_first" for layer in model.layers)
    assert first is (CONV_DATA_FORMAT == "channels_first")
    assert all(type(layer) is FusedBatchNormalization for layer in model.layers
               if isinstance(layer, keras.layers.BatchNormalization))
    with pytest.raises(ValueError, match="data_format must be"):
        backbones.PreActResNet18(10, width=4, data_format="NCHW")


def _conv_net(conv_class, data_format):
    inputs = keras.Input((8, 8, 3))
    x = keras.layers.Permute((3, 1, 2))(inputs) if data_format == "channels_first" else inputs
    x = conv_class(6, 3, padding="same", data_format=data_format)(x)
    x = conv_class(5, 3, strides=2, data_format=data_format)(keras.layers.ReLU()(x))
    x = keras.layers.GlobalAveragePooling2D(data_format=data_format)(x)
    return keras.Model(inputs, keras.layers.Dense(4)(x))


@pytest.mark.parametrize("data_format", ["channels_last", "channels_first"])
def test_natively_stored_kernels_train_as_keras_conv2d_does(data_format):
    """Same outputs and the same weights after three SGD steps with momentum as
    Keras' Conv2D (on torch the kernels and their momentum live in PyTorch's
    memory order; elsewhere the layer is Keras')."""
    if data_format == "channels_first" and keras.backend.backend() == "tensorflow":
        pytest.skip("TensorFlow's CPU convolutions take channels-last only")
    rng = np.random.default_rng(1)
    images = rng.normal(size=(8, 8, 8, 3)).astype("float32")
    labels = rng.integers(0, 4, 8)
    nets = [_conv_net(c, data_format) for c in (keras.layers.Conv2D, NativeKernelConv2D)]
    nets[1].set_weights(nets[0].get_weights())
    np.testing.assert_allclose(keras.ops.convert_to_numpy(nets[1](images)),
                               keras.ops.convert_to_numpy(nets[0](images)), rtol=1e-5, atol=1e-6)
    for net in nets:
        net.compile(keras.optimizers.SGD(0.1, momentum=0.9),
                    keras.losses.SparseCategoricalCrossentropy(from_logits=True))
        for _ in range(3):
            net.train_on_batch(images, labels)
    for a, b in zip(nets[0].get_weights(), nets[1].get_weights()):
        np.testing.assert_allclose(b, a, rtol=1e-4, atol=1e-6)
    assert not np.allclose(nets[1].get_weights()[0], _conv_net(
        keras.layers.Conv2D, data_format).get_weights()[0])


def test_training_convolutions_pass_their_operands_through_materialized():
    """In training, `NativeKernelConv2D` passes its input and output through
    `backend.materialized`: on JAX on a CPU a conditional (XLA then transposes
    the stored values for the kernel gradient instead of recomputing the
    element-wise work around the layer inside the transposed copies),
    elsewhere the value itself. Values and gradients are unchanged."""
    from keras_sanm.backend import device_kind, materialized

    x = np.random.default_rng(0).normal(size=(2, 6, 6, 3)).astype("float32")
    tensor = keras.ops.convert_to_tensor(x)
    np.testing.assert_array_equal(keras.ops.convert_to_numpy(materialized(tensor)), x)
    if keras.backend.backend() != "jax" or device_kind() != "cpu":
        assert materialized(tensor) is tensor
        return
    import jax

    conv = NativeKernelConv2D(4, 3, padding="same")
    conv.build(x.shape)

    def loss(training):
        return lambda v: keras.ops.sum(keras.ops.square(conv(v, training=training)))

    assert str(jax.make_jaxpr(loss(True))(x)).count("cond[") == 2  # input and output
    assert "cond[" not in str(jax.make_jaxpr(loss(False))(x))
    np.testing.assert_array_equal(np.asarray(jax.jit(loss(True))(x)),
                                  np.asarray(jax.jit(loss(False))(x)))
    np.testing.assert_allclose(np.asarray(jax.jit(jax.grad(loss(True)))(x)),
                               np.asarray(jax.jit(jax.grad(loss(False)))(x)), rtol=1e-5, atol=1e-6)
    assert materialized(keras.ops.zeros((0, 3))).shape == (0, 3)
    flags = keras.ops.convert_to_tensor(np.array([True, False]))
    assert materialized(flags) is flags  # (only floating-point values are stored)
    # Another array may pick the branch (the layer passes its kernel): same values.
    kernel = keras.ops.convert_to_tensor(conv.kernel)
    np.testing.assert_array_equal(np.asarray(jax.jit(lambda v: materialized(v, kernel))(x)), x)


@pytest.mark.only_backend("torch", reason="PyTorch's memory order for convolution kernels")
def test_kernels_are_stored_in_pytorchs_order_and_stay_there(tmp_path):
    """The kernel is a view with Keras' shape over an (out, in, h, w) buffer, in
    the model's torch parameters too, through `set_weights` and a saved model."""
    import torch

    model = backbones.PreActResNet18(10, width=4)
    conv = model.get_layer("stage2_block1_conv1")
    assert isinstance(conv, NativeKernelConv2D)
    kernel = conv.kernel.value
    assert tuple(kernel.shape) == (3, 3, 4, 8)
    assert kernel.permute(3, 2, 0, 1).is_contiguous()
    assert any(p is kernel for p in model.parameters())
    model.set_weights([w + 1.0 for w in model.get_weights()])
    assert conv.kernel.value.permute(3, 2, 0, 1).is_contiguous()
    np.testing.assert_allclose(keras.ops.convert_to_numpy(conv.kernel),
                               keras.ops.convert_to_numpy(kernel))
    model.save(tmp_path / "backbone.keras")
    loaded = keras.saving.load_model(tmp_path / "backbone.keras")
    loaded_kernel = loaded.get_layer("stage2_block1_conv1").kernel
    assert loaded_kernel.value.permute(3, 2, 0, 1).is_contiguous()
    np.testing.assert_array_equal(keras.ops.convert_to_numpy(loaded_kernel),
                                  keras.ops.convert_to_numpy(kernel))
    # The optimizer's momentum follows the kernel's order after the first step.
    from keras_sanm import wrap
    trainer = wrap(model, method="ce", sanm=False)
    trainer.compile()
    rng = np.random.default_rng(0)
    trainer.fit(rng.integers(0, 256, (16, 32, 32, 3), dtype=np.uint8),
                rng.integers(0, 10, 16), batch_size=8, epochs=1, verbose=0)
    slots = [v for v in trainer.optimizer.variables if tuple(v.shape) == (3, 3, 4, 8)]
    assert slots and all(v.value.stride() == conv.kernel.value.stride() for v in slots)
    assert isinstance(kernel, torch.nn.Parameter)


@pytest.mark.parametrize("axis", [-1, 1])
def test_fused_batch_normalization_trains_as_keras_does(axis):
    """Outputs, gradients and moving statistics of training calls equal Keras'
    `BatchNormalization`; the backend's fused kernel is the one that ran where
    it has one for the layout (TensorFlow channels-last, PyTorch channels-first)."""
    from keras_sanm.backend import fused_batch_norm

    rng = np.random.default_rng(3)
    x = rng.normal(2.0, 3.0, (8, 5, 5, 6) if axis == -1 else (8, 6, 5, 5)).astype("float32")
    layers = [keras.layers.BatchNormalization(axis=axis, momentum=0.9, epsilon=1e-5),
              FusedBatchNormalization(axis=axis, momentum=0.9, epsilon=1e-5)]
    for layer in layers:
        layer.build(x.shape)
    layers[0].gamma.assign(rng.normal(1.0, 0.2, 6).astype("float32"))
    layers[1].set_weights(layers[0].get_weights())
    results = []
    for layer in layers:
        def loss():
            y = layer(x, training=True)
            return keras.ops.sum(y * keras.ops.sin(y))
        grads = gradients(loss, layer.trainable_variables)
        for _ in range(2):  # outside `gradients`: kept on every backend
            y = layer(x, training=True)
        results.append([keras.ops.convert_to_numpy(v) for v in
                        (y, *grads, layer.moving_mean, layer.moving_variance)])
    for a, b in zip(*results):
        np.testing.assert_allclose(b, a, rtol=1e-4, atol=2e-4)
    assert results[1][-1].min() > 1.5  # the moving variance moved from 1 towards 9
    fused = fused_batch_norm(keras.ops.convert_to_tensor(x), layers[1].gamma, layers[1].beta,
                             axis, 1e-5)
    expected = {"tensorflow": -1, "torch": 1}.get(keras.backend.backend())
    assert (fused is not None) is (axis == expected)


@pytest.mark.parametrize("data_format", ["channels_last", "channels_first"])
@pytest.mark.parametrize("size,stride", [(8, 2), (7, 2), (9, 3)])
def test_subsample_is_a_one_pixel_max_pool_with_its_gradient(data_format, size, stride):
    if data_format == "channels_first" and keras.backend.backend() == "tensorflow":
        pytest.skip("TensorFlow's CPU max-pool takes channels-last only")
    from keras_sanm.backbones.layers import Subsample2D

    shape = (2, 3, size, size) if data_format == "channels_first" else (2, size, size, 3)
    x = keras.Variable(np.random.default_rng(0).normal(size=shape).astype("float32"))
    weights = np.random.default_rng(1).normal(size=keras.layers.MaxPooling2D(
        1, stride, data_format=data_format).compute_output_shape(shape)).astype("float32")
    outputs, grads = [], []
    for layer in (Subsample2D(stride, data_format),
                  keras.layers.MaxPooling2D(1, stride, data_format=data_format)):
        outputs.append(keras.ops.convert_to_numpy(layer(keras.ops.convert_to_tensor(x.numpy()))))
        grads.append(keras.ops.convert_to_numpy(gradients(
            lambda: keras.ops.sum(layer(x) * keras.ops.convert_to_tensor(weights)), [x])[0]))
    np.testing.assert_array_equal(outputs[0], outputs[1])
    np.testing.assert_array_equal(grads[0], grads[1])
    layer = Subsample2D(stride, data_format)
    assert tuple(layer.compute_output_shape(shape)) == outputs[0].shape
    assert Subsample2D.from_config(layer.get_config()).get_config() == layer.get_config()
    with pytest.raises(ValueError, match="strides"):
        Subsample2D(0)


def test_preact_resnet18_shortcuts_subsample_without_pooling():
    model = backbones.PreActResNet18(num_classes=10, input_shape=(32, 32, 3), width=4)
    pools = [layer for layer in model.layers if isinstance(layer, keras.layers.MaxPooling2D)]
    subsample = [layer.name for layer in model.layers if "subsample" in layer.name]
    assert pools == [] and subsample == [f"stage{s}_block1_subsample" for s in (2, 3, 4)]
