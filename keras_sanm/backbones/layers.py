"""Layers shared by the backbones, initialised and normalised as PyTorch does.

Convolution and dense kernels use PyTorch's default initialisation and batch
normalisation uses PyTorch's momentum (0.1, i.e. Keras `momentum=0.9`) and
epsilon, so training dynamics match the reference code.
"""

from __future__ import annotations

import keras
from keras import layers, ops

from keras_sanm.backend import (
    CONV_DATA_FORMAT,
    fused_batch_norm,
    materialized,
    store_conv_kernel_natively,
)

# The layer whose output is the spatial feature map SANM masks from.
FEATURE_LAYER = "feature_map"


def check_data_format(data_format: str | None) -> str:
    """`data_format` of a backbone's inside, `None` meaning this backend's faster one.

    Inputs and the feature map stay channels-last either way; only the
    layers between them change layout (and no weight changes shape).
    """
    if data_format is None:
        return CONV_DATA_FORMAT
    if data_format not in ("channels_last", "channels_first"):
        raise ValueError(
            f"data_format must be 'channels_last', 'channels_first' or None; got {data_format!r}.")
    return data_format


def channels(x, data_format: str) -> int:
    """The channel count of a feature tensor in `data_format`."""
    return x.shape[1] if data_format == "channels_first" else x.shape[-1]


def torch_default_init():
    # PyTorch's kaiming_uniform_(a=sqrt(5)) == uniform(+-sqrt(1 / fan_in)).
    return keras.initializers.VarianceScaling(1.0 / 3.0, "fan_in", "uniform")


@keras.saving.register_keras_serializable(package="keras_sanm")
class FusedBatchNormalization(layers.BatchNormalization):
    """Keras' `BatchNormalization` whose training steps use the backend's fused kernel.

    Where `keras_sanm.backend.fused_batch_norm` has one (PyTorch with the
    channels on axis 1, TensorFlow with float32 channels-last images), a
    training call normalises in one kernel and updates the moving statistics
    as Keras does; everything else (inference, masks, renorm, synchronised
    statistics, other layouts, JAX) is Keras' own code. Keras' torch and
    TensorFlow backends otherwise assemble the normalisation and its
    gradient from separate element-wise passes (XLA fuses them on JAX).
    """

    def call(self, inputs, training=None, mask=None):
        if not (training and self.trainable) or mask is not None or self.renorm \
                or self.synchronized or not self.center or not self.scale:
            return super().call(inputs, training=training, mask=mask)
        x = ops.cast(inputs, keras.backend.result_type(inputs.dtype, "float32"))
        fused = fused_batch_norm(x, ops.cast(self.gamma, x.dtype), ops.cast(self.beta, x.dtype),
                                 self.axis, self.epsilon)
        if fused is None:
            return super().call(inputs, training=training, mask=mask)
        outputs, mean, variance = fused
        self.moving_mean.assign(ops.cast(self.moving_mean, x.dtype) * self.momentum
                                + mean * (1.0 - self.momentum))
        self.moving_variance.assign(ops.cast(self.moving_variance, x.dtype) * self.momentum
                                    + variance * (1.0 - self.momentum))
        return ops.cast(outputs, self.compute_dtype)


@keras.saving.register_keras_serializable(package="keras_sanm")
class NativeKernelConv2D(layers.Conv2D):
    """Keras' `Conv2D` whose kernel is stored in the memory order the
    backend's convolution reads.

    The kernel keeps Keras' shape `(h, w, in, out)`, its values and how it
    saves; on PyTorch its memory is `(out, in, h, w)`
    (`keras_sanm.backend.store_conv_kernel_natively`), which saves a copy of
    every kernel in each forward and backward pass. In training on JAX on a
    CPU, its input and output pass through `keras_sanm.backend.materialized`,
    so XLA transposes the stored values for the kernel gradient instead of
    recomputing the batch normalisation around the layer inside the
    transposed copies (same values). On TensorFlow it is Keras' layer.
    """

    def build(self, input_shape):
        super().build(input_shape)
        if getattr(self.kernel, "_value", None) is not None:  # (not a deferred variable)
            store_conv_kernel_natively(self.kernel)

    def call(self, inputs, training=None):
        if not training:
            return super().call(inputs)
        # The kernel (whole on every device) picks the conditional's branch.
        kernel = ops.convert_to_tensor(self.kernel)
        return materialized(super().call(materialized(inputs, kernel)), kernel)


@keras.saving.register_keras_serializable(package="keras_sanm")
class Subsample2D(layers.Layer):
    """Keeps every `strides`-th row and column of an image batch, starting at the first.

    The same output and gradient as `MaxPooling2D(1, strides)`, as a strided
    slice. A max-pool's gradient searches each window for its maximum (on
    JAX, XLA builds four integer index arrays of the input's size for it);
    the slice's gradient places the values and fills zeros.

    Args:
        strides: the step between kept rows and columns.
        data_format: `"channels_last"` (NHWC) or `"channels_first"` (NCHW).

    Example:

    >>> Subsample2D(2)(keras.ops.zeros((1, 5, 5, 3))).shape
    (1, 3, 3, 3)
    """

    def __init__(self, strides: int, data_format: str = "channels_last", **kwargs):
        super().__init__(**kwargs)
        if not isinstance(strides, int) or strides < 1:
            raise ValueError(f"strides must be a positive integer; got {strides!r}.")
        self.strides = strides
        self.data_format = check_data_format(data_format)

    def call(self, inputs):
        s = self.strides
        if self.data_format == "channels_first":
            return inputs[:, :, ::s, ::s]
        return inputs[:, ::s, ::s, :]

    def compute_output_shape(self, input_shape):
        def kept(size):
            return None if size is None else -(-size // self.strides)

        shape = list(input_shape)
        spatial = (2, 3) if self.data_format == "channels_first" else (1, 2)
        for axis in spatial:
            shape[axis] = kept(shape[axis])
        return tuple(shape)

    def get_config(self):
        return {**super().get_config(), "strides": self.strides, "data_format": self.data_format}


def batch_norm(name, data_format: str = "channels_last"):
    return FusedBatchNormalization(axis=1 if data_format == "channels_first" else -1,
                                   momentum=0.9, epsilon=1e-5, name=name)


def conv(filters, kernel, strides=1, padding="same", use_bias=False, name=None,
         data_format: str = "channels_last"):
    return NativeKernelConv2D(
        filters, kernel, strides=strides, padding=padding, use_bias=use_bias,
        kernel_initializer=torch_default_init(), name=name, data_format=data_format,
    )


def strided_conv3x3(x, filters, stride, block, data_format: str = "channels_last"):
    """A block's first 3x3 convolution (`{block}_conv1`), padding one pixel on
    every side as PyTorch's `padding=1` (Keras' "same" with stride 2 pads 0
    before and 1 after, shifting this path one pixel against the shortcut)."""
    if stride == 1:
        return conv(filters, 3, 1, name=f"{block}_conv1", data_format=data_format)(x)
    padded = layers.ZeroPadding2D(1, name=f"{block}_pad1", data_format=data_format)(x)
    return conv(filters, 3, stride, "valid", name=f"{block}_conv1",
                data_format=data_format)(padded)


def projection(x, filters, stride, block, data_format: str = "channels_last"):
    """A block's 1x1 stride-`s` shortcut convolution (`{block}_shortcut`),
    written as subsampling every `s`-th pixel (`Subsample2D`) and a stride-1
    convolution: the same function and weights, because PyTorch 2.13's CPU
    backward of a strided 1x1 convolution over few channels (4 or 8, from
    64x64 inputs) crashes the process (tests/test_backbones.py)."""
    every = (Subsample2D(stride, data_format, name=f"{block}_subsample")(x)
             if stride != 1 else x)
    return conv(filters, 1, 1, "valid", name=f"{block}_shortcut",
                data_format=data_format)(every)


def resnet18_body(input_shape, width: int, block, data_format: str | None = None):
    """`(inputs, feature_map)` of a CIFAR ResNet-18: 3x3 stem conv, BN, ReLU, then
    four stages of two `block(x, filters, stride, name, output_name, data_format)`
    calls (`width` x 1, 2, 4, 8 filters; strides 1, 2, 2, 2); the last block's
    output is the layer `feature_map`, channels-last.

    With `data_format="channels_first"` the images are transposed once after
    the input and the feature map once at the end (`feature_map` is then that
    transpose); every layer between runs channels-first, PyTorch's own
    layout, so Keras' torch backend does not transpose around each
    convolution and batch normalisation (docs/benchmarks.md).
    """
    if not isinstance(width, int) or width < 1:
        raise ValueError(f"width must be a positive integer; got {width!r}.")
    data_format = check_data_format(data_format)
    first = data_format == "channels_first"
    inputs = keras.Input(input_shape, name="images")
    x = layers.Permute((3, 1, 2), name="to_channels_first")(inputs) if first else inputs
    x = conv(width, 3, name="stem_conv", data_format=data_format)(x)
    x = layers.ReLU(name="stem_relu")(batch_norm("stem_bn", data_format)(x))
    stages = ((width, 1), (2 * width, 2), (4 * width, 2), (8 * width, 2))
    for s, (filters, stride) in enumerate(stages):
        for b in range(2):
            last = s == len(stages) - 1 and b == 1
            x = block(x, filters, stride if b == 0 else 1, f"stage{s + 1}_block{b + 1}",
                      output_name=FEATURE_LAYER if last and not first else None,
                      data_format=data_format)
    if first:
        x = layers.Permute((2, 3, 1), name=FEATURE_LAYER)(x)
    return inputs, x
