"""A `Conv2DTranspose` that can run as a sub-pixel convolution.

A valid-padding transposed convolution with kernel `k` and stride `s` equals,
exactly, an ordinary stride-1 convolution producing `s*s` times the output
channels (one group per output phase, each with `ceil(k / s)` taps) followed
by a depth-to-space shuffle. The two give the same numbers from the same
kernel; which is faster depends on the backend (see
`keras_sanm.backend.SUBPIXEL_TRANSPOSED_CONV`).
"""

from __future__ import annotations

import keras
from keras import ops

from keras_sanm import backend

IMPLEMENTATIONS = ("auto", "native", "subpixel")


def subpixel_conv_transpose(inputs, kernel, strides, output_size):
    """Valid-padding transposed convolution computed as a sub-pixel convolution.

    Args:
        inputs: `(B, h, w, C_in)` channels-last tensor.
        kernel: `(kh, kw, C_out, C_in)` kernel, the `Conv2DTranspose` layout.
        strides: `(sh, sw)`.
        output_size: `(H, W)` of the result, normally
            `((h - 1) * sh + kh + pad_h, (w - 1) * sw + kw + pad_w)` for
            output padding `pad`.

    Returns:
        `(B, H, W, C_out)`, equal to `ops.conv_transpose(inputs, kernel,
        strides, padding="valid")` extended by the output padding.

    Example:
    >>> x = ops.ones((1, 2, 2, 1))
    >>> k = ops.ones((2, 2, 1, 1))
    >>> tuple(subpixel_conv_transpose(x, k, (2, 2), (4, 4)).shape)
    (1, 4, 4, 1)
    """
    kh, kw, c_out, c_in = (int(v) for v in kernel.shape)
    sh, sw = (int(v) for v in strides)
    taps_h, taps_w = -(-kh // sh), -(-kw // sw)
    # Kernel tap t = phase + stride * j: split each axis into (j, phase).
    kernel = ops.pad(
        kernel, [(0, taps_h * sh - kh), (0, taps_w * sw - kw), (0, 0), (0, 0)]
    )
    kernel = ops.reshape(kernel, (taps_h, sh, taps_w, sw, c_out, c_in))
    # Output row s*q + phase reads input rows q - j: a correlation with the
    # taps reversed.
    kernel = ops.flip(kernel, axis=(0, 2))
    kernel = ops.transpose(kernel, (0, 2, 5, 1, 3, 4))
    kernel = ops.reshape(kernel, (taps_h, taps_w, c_in, sh * sw * c_out))
    padded = ops.pad(
        inputs, [(0, 0), (taps_h - 1, taps_h - 1), (taps_w - 1, taps_w - 1), (0, 0)]
    )
    phases = ops.conv(padded, kernel, strides=1, padding="valid")
    rows, cols = int(phases.shape[1]), int(phases.shape[2])
    out = ops.reshape(phases, (-1, rows, cols, sh, sw, c_out))
    out = ops.transpose(out, (0, 1, 3, 2, 4, 5))
    out = ops.reshape(out, (-1, rows * sh, cols * sw, c_out))
    height, width = (int(v) for v in output_size)
    extra_h, extra_w = max(0, height - rows * sh), max(0, width - cols * sw)
    if extra_h or extra_w:
        out = ops.pad(out, [(0, 0), (0, extra_h), (0, extra_w), (0, 0)])
    return out[:, :height, :width, :]


@keras.saving.register_keras_serializable(package="keras_sanm")
class SubPixelConv2DTranspose(keras.layers.Conv2DTranspose):
    """`keras.layers.Conv2DTranspose` with a choice of how it is computed.

    Same weights, same outputs; only the computation differs. Sub-pixel form
    applies to channels-last, valid-padding, undilated layers; anything else
    runs the native operation.

    Args:
        implementation: `"native"` (`ops.conv_transpose`), `"subpixel"` (a
            stride-1 convolution and a depth-to-space shuffle), or `"auto"`:
            the faster of the two on the current backend.
        **kwargs: `keras.layers.Conv2DTranspose` arguments.

    Example:
    >>> layer = SubPixelConv2DTranspose(8, 4, strides=2, implementation="subpixel")
    >>> tuple(layer(ops.zeros((1, 4, 4, 16))).shape)
    (1, 10, 10, 8)
    """

    def __init__(self, *args, implementation: str = "auto", **kwargs):
        super().__init__(*args, **kwargs)
        if implementation not in IMPLEMENTATIONS:
            raise ValueError(
                f"implementation must be one of {IMPLEMENTATIONS}; "
                f"got {implementation!r}."
            )
        self.implementation = implementation

    def _uses_subpixel(self) -> bool:
        if self.implementation == "native":
            return False
        if self.implementation == "auto" and not backend.SUBPIXEL_TRANSPOSED_CONV:
            return False
        return (
            self.data_format == "channels_last"
            and self.padding == "valid"
            and tuple(self.dilation_rate) == (1, 1)
        )

    def call(self, inputs):
        if not self._uses_subpixel():
            return super().call(inputs)
        output_shape = self.compute_output_shape(tuple(inputs.shape))
        outputs = subpixel_conv_transpose(
            inputs, self.kernel, self.strides, output_shape[1:3]
        )
        if self.use_bias:
            outputs = outputs + self.bias
        if self.activation is not None:
            outputs = self.activation(outputs)
        return outputs

    def get_config(self):
        config = super().get_config()
        config["implementation"] = self.implementation
        return config
