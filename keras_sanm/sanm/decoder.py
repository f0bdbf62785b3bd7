"""Reconstruction decoder of SANM's self-supervised branch (docs/algorithms.md, "SANM")."""

from __future__ import annotations

import keras
from keras import ops

from keras_sanm.sanm.transposed_conv import SubPixelConv2DTranspose

# Per-axis layouts of the reference decoders, (feature size, image size) ->
# [(kernel, stride, output_padding), ...]. `SANM-code` resnetc2d.Decoder for
# ResNet-18 / PreAct ResNet-18 at 32x32 and ResNet-50 at 224x224; the 9-layer
# CNN layout is the package's own (docs/algorithms.md, "SANM").
REFERENCE_LAYOUTS = {
    (4, 32): [(4, 2, 0), (6, 1, 0), (4, 2, 0)],
    (7, 224): [(6, 3, 1), (2, 3, 1), (2, 3, 0)],
    (2, 32): [(4, 2, 0), (4, 2, 0), (6, 2, 0)],
}


# Hidden channels of the reference decoders (ResNet-18 and ResNet-50 alike).
REFERENCE_FILTERS = (256, 128, 64, 32)


def _axis_layout(feature_size: int, image_size: int):
    """Valid-padding transposed convolutions taking one axis from `n` to `N`."""
    if feature_size > image_size:
        raise ValueError(
            f"The feature map ({feature_size}) is larger than the image "
            f"({image_size}); the decoder only upsamples."
        )
    known = REFERENCE_LAYOUTS.get((feature_size, image_size))
    if known is not None:
        return list(known)
    layout, size = [], feature_size
    while (2 * size + 2) * 2 <= image_size:
        layout.append((4, 2, 0))
        size = 2 * size + 2
    if size == 1:
        layout.append((image_size, 1, 0))
        return layout
    stride = max(1, (image_size - 1) // (size - 1))
    while stride > 1 and image_size - (size - 1) * stride < stride:
        stride -= 1
    layout.append((image_size - (size - 1) * stride, stride, 0))
    return layout


def decoder_layout(feature_hw: tuple[int, int], image_hw: tuple[int, int]):
    """Kernel, stride and output padding of each decoder layer.

    Args:
        feature_hw: spatial size `(h, w)` of the encoder feature map.
        image_hw: spatial size `(H, W)` of the images to reconstruct.

    Returns:
        A list of `(kernel, strides, output_padding)` pairs, one per layer,
        each a `(rows, cols)` tuple.

    Example:
    >>> decoder_layout((4, 4), (32, 32))[1]
    ((6, 6), (1, 1), (0, 0))
    """
    rows = _axis_layout(feature_hw[0], image_hw[0])
    cols = _axis_layout(feature_hw[1], image_hw[1])
    identity = (1, 1, 0)
    depth = max(len(rows), len(cols))
    rows = [identity] * (depth - len(rows)) + rows
    cols = [identity] * (depth - len(cols)) + cols
    return [
        ((r[0], c[0]), (r[1], c[1]), (r[2], c[2])) for r, c in zip(rows, cols)
    ]


@keras.saving.register_keras_serializable(package="keras_sanm")
class ReconstructionDecoder(keras.layers.Layer):
    """Transposed-convolution decoder from a feature map back to the image.

    Three (or more) valid-padding `Conv2DTranspose` layers with biases and no
    normalisation or activation in between, as the reference decoder; the
    last layer outputs the image's channels with no activation (it targets
    normalised pixels). For a `4x4x512` feature map and `32x32` images the
    layout is exactly the reference's (`512 -> 256, k4 s2 -> 128, k6 s1 ->
    C, k4 s2`); other sizes get a layout of the same style that lands exactly
    on the image size. The hidden layers have the reference's 256, 128, 64, 32
    channels, or half, a quarter, ... of the feature map's channels where
    that is fewer, so a narrow encoder keeps the reference's proportion (a
    width-16 PreAct ResNet-18's 128 channels give 64 and 32) instead of being
    outweighed by its decoder (the reference decoder at 128 channels costs
    several times the width-16 network).

    Args:
        image_shape: `(H, W, C)` of the images to reconstruct.
        filters: channel counts of the hidden layers, from the first; reused
            from the end when the layout needs more layers. `None`: the
            reference's `(256, 128, 64, 32)`, each capped at the feature
            map's channels / 2, / 4, / 8, / 16 (at least 8).
        implementation: how the transposed convolutions are computed,
            `"auto"` (default: the faster on the current backend), `"native"`
            or `"subpixel"`; all give the same outputs from the same weights
            (see `SubPixelConv2DTranspose`).

    Call args:
        feature_map: `(B, h, w, K)` encoder output.

    Returns:
        `(B, H, W, C)` reconstructions.

    Example:
    >>> decoder = ReconstructionDecoder((32, 32, 3))
    >>> tuple(decoder(ops.zeros((2, 4, 4, 512))).shape)
    (2, 32, 32, 3)
    """

    def __init__(
        self,
        image_shape,
        filters=None,
        implementation: str = "auto",
        **kwargs,
    ):
        super().__init__(**kwargs)
        image_shape = tuple(int(v) for v in image_shape)
        if len(image_shape) != 3:
            raise ValueError(f"image_shape must be (H, W, C); got {image_shape}.")
        self.image_shape = image_shape
        self.filters = None if filters is None else tuple(int(f) for f in filters)
        self.implementation = implementation
        self.conv_layers = []

    def build(self, feature_shape):
        if len(feature_shape) != 4 or None in tuple(feature_shape[1:]):
            raise ValueError(
                "ReconstructionDecoder needs a (batch, h, w, channels) feature map "
                f"with known sizes; got {tuple(feature_shape)}."
            )
        layout = decoder_layout(tuple(feature_shape[1:3]), self.image_shape[:2])
        filters = self.filters or tuple(
            min(reference, max(8, int(feature_shape[-1]) // 2 ** (i + 1)))
            for i, reference in enumerate(REFERENCE_FILTERS))
        hidden = list(filters[: len(layout) - 1])
        while len(hidden) < len(layout) - 1:
            hidden.append(filters[-1])
        channels = hidden + [self.image_shape[2]]
        self.conv_layers = [
            SubPixelConv2DTranspose(
                filters=filters,
                kernel_size=kernel,
                strides=strides,
                padding="valid",
                output_padding=padding,
                data_format="channels_last",
                implementation=self.implementation,
                name=f"deconv_{i}",
            )
            for i, (filters, (kernel, strides, padding)) in enumerate(
                zip(channels, layout)
            )
        ]
        shape = tuple(feature_shape)
        for layer in self.conv_layers:
            layer.build(shape)
            shape = layer.compute_output_shape(shape)
        if tuple(shape[1:]) != self.image_shape:
            raise ValueError(
                f"Decoder layout produced {tuple(shape[1:])}, expected "
                f"{self.image_shape}."
            )

    def call(self, feature_map):
        x = feature_map
        for layer in self.conv_layers:
            x = layer(x)
        return x

    def compute_output_shape(self, feature_shape):
        return (feature_shape[0],) + self.image_shape

    def get_config(self):
        config = super().get_config()
        config.update(
            image_shape=self.image_shape,
            filters=self.filters,
            implementation=self.implementation,
        )
        return config


def reconstruction_loss(reconstructions, targets):
    """Mean squared error over all pixels, channels and samples.

    Args:
        reconstructions: `(B, H, W, C)` decoder outputs.
        targets: `(B, H, W, C)` unmasked images.

    Returns:
        Scalar loss.
    """
    diff = ops.cast(reconstructions, "float32") - ops.cast(targets, "float32")
    return ops.mean(ops.square(diff))
