"""Convolutional autoencoder attention gate.

The study's new spatial gate: a small convolutional autoencoder looks at the
feature map and its sigmoid output is an element-wise (H x W x C) mask. Not
from a prior paper; docs/study.md gives the study's layout: encoder of 4x4
stride-2 convolutions (padding 1) with 12, 24, 48 filters, decoder of 4x4
stride-2 transposed convolutions with 24 and 12 filters, then a transposed
convolution back to C channels at the exact input size, then a sigmoid.

Departure from the study: the study hand-tuned the last transposed convolution
for each of the four CIFAR sites (32, 30, 15 and 13 pixels wide). Here its
stride and cropping are derived from the input shape (`final_geometry`), so any
height and width work; for a given ``final_kernel`` the parameter count is the
study's. On 32x32 CIFAR the derived geometry is the study's at sites 1, 2 and 4;
at site 3 (15x15) the study cropped one row/column at the top and let the last
one see only the bias, while here the 15 outputs are the first 15 rows that
the kernel covers fully.
"""

import math

import keras
from keras import ops

from keras_attn.layers._checks import (
    check_activation,
    check_positive_int,
    check_positive_ints,
    check_rank4,
)
from keras_attn.layers._gate import AttentionGate

#: Kernel initializers the gate accepts (Keras names).
KERNEL_INITIALIZERS = (
    "glorot_uniform",
    "glorot_normal",
    "he_normal",
    "he_uniform",
    "lecun_normal",
    "lecun_uniform",
    "orthogonal",
)


def max_depth(size):
    """Deepest encoder (number of stride-2 stages) a side of ``size`` pixels allows.

    Each stage maps ``n`` pixels to ``floor(n / 2)``, and must leave at least one.

    Example:
    >>> max_depth(32), max_depth(13)
    (5, 3)
    """
    check_positive_int("size", size)
    return int(math.floor(math.log2(size)))


def final_geometry(decoded, target, kernel):
    """Stride and cropping of the last transposed convolution, derived from sizes.

    The decoder ends at ``decoded`` pixels; the last transposed convolution must
    produce exactly ``target``. The stride is the smallest that reaches it,
    ``ceil(target / decoded)``; the excess of the full output over the target is
    cropped, half (rounded up) before and the rest after.

    Args:
        decoded: int, size of the decoder's output along one axis.
        target: int, the gate's input size along that axis.
        kernel: int, kernel size of the last transposed convolution.

    Returns:
        ``(stride, crop_before, crop_after)`` for Keras' default ``"valid"``
        ``Conv2DTranspose`` (``(decoded - 1) * stride + max(kernel, stride)``
        positions, those past the kernel's reach holding only the bias)
        followed by ``Cropping2D``. The gate computes the same without an
        output padding (see `ConvAutoencoderGate`).

    Example:
    >>> final_geometry(16, 32, 3), final_geometry(4, 13, 2)
    ((2, 1, 0), (4, 1, 2))
    """
    stride = -(-target // decoded)
    # Keras' "valid" transposed conv yields (n - 1) * s + max(k, s) positions.
    produced = (decoded - 1) * stride + max(kernel, stride)
    excess = (decoded - 1) * stride + kernel - target
    before = max(0, -(-excess // 2))
    return stride, before, produced - target - before


@keras.saving.register_keras_serializable(package="keras_attn")
class ConvAutoencoderGate(AttentionGate):
    """Convolutional autoencoder whose sigmoid output masks the input element-wise.

    Encoder: one 4x4 stride-2 convolution (padding 1, then ``activation``) per
    entry of ``filters``, each halving height and width (rounding down).
    Decoder: 4x4 stride-2 transposed convolutions with the encoder's widths in
    reverse, but the last (each followed by ``activation``), then a transposed
    convolution with ``final_kernel`` back to the input's channels, whose stride
    and cropping are derived from the input size (`final_geometry`) so the
    mask has exactly the input's shape; then a sigmoid. Output = input x mask.

    Trainable weights with the study's ``filters=(12, 24, 48)``: 65,464 for
    64 channels (kernel 3), 84,728 for 128 channels (kernel 3) and 77,048 for
    128 channels (kernel 2), as in docs/study.md.

    Args:
        filters: sequence of ints, default ``(12, 24, 48)``. Encoder widths; its
            length is the depth (number of stride-2 stages), at most
            ``floor(log2(min(H, W)))``.
        final_kernel: int, default 3. Kernel size of the last transposed
            convolution.
        activation: str, default ``"relu"``. Activation after every
            convolution but the last.
        kernel_initializer: str, default ``"glorot_uniform"`` (Keras'). The
            initializer of every convolution's kernel; ``"he_normal"`` keeps the
            signal's scale through the ReLU stages.
        logit_scale: ``None`` (default) or a positive float: a trainable scalar,
            starting at this value, that multiplies the logits before the
            sigmoid, so training can sharpen a mask that starts near 0.5.
        **kwargs: base layer arguments.

    Example:
    >>> import numpy as np
    >>> gate = ConvAutoencoderGate()
    >>> tuple(gate(np.ones((2, 15, 15, 128), "float32")).shape)
    (2, 15, 15, 128)
    >>> gate.count_params()
    84728
    """

    def __init__(
        self,
        filters=(12, 24, 48),
        final_kernel=3,
        activation="relu",
        kernel_initializer="glorot_uniform",
        logit_scale=None,
        **kwargs,
    ):
        super().__init__(**kwargs)
        self.filters = check_positive_ints("filters", filters)
        self.final_kernel = check_positive_int("final_kernel", final_kernel)
        self.activation = check_activation("activation", activation)
        # Checked by name: instantiating a random initializer would draw from Python's
        # random module and change every weight the model draws after this layer.
        if kernel_initializer not in KERNEL_INITIALIZERS:
            raise ValueError(
                f"`kernel_initializer` must be one of {', '.join(KERNEL_INITIALIZERS)}, "
                f"got {kernel_initializer!r}."
            )
        self.kernel_initializer = kernel_initializer
        if logit_scale is not None and (
            isinstance(logit_scale, bool)
            or not isinstance(logit_scale, (int, float))
            or not logit_scale > 0
        ):
            raise ValueError(
                f"`logit_scale` must be None or a positive number, got {logit_scale!r}."
            )
        self.logit_scale = None if logit_scale is None else float(logit_scale)
        self.stages = []

    @property
    def depth(self):
        """Number of stride-2 stages of the encoder."""
        return len(self.filters)

    def build(self, input_shape):
        check_rank4(self, input_shape)
        height, width, channels = input_shape[1:]
        for label, size in (("height", height), ("width", width)):
            if self.depth > max_depth(size):
                raise ValueError(
                    f"ConvAutoencoderGate with depth {self.depth} (filters={list(self.filters)}) "
                    f"needs a feature map of at least {2**self.depth} pixels on each side, but "
                    f"its input {label} is {size} (input shape {tuple(input_shape)}); use at "
                    f"most {max_depth(min(height, width))} stages here."
                )
        kw = {"dtype": self.dtype_policy}
        conv_kw = {**kw, "kernel_initializer": self.kernel_initializer}
        act = self.activation
        stages = []
        h, w = height, width
        for i, f in enumerate(self.filters):
            # A 4x4 stride-2 conv with padding 1 is Keras' "same" when both sides are even;
            # odd sides need the explicit padding (then "valid") to round down like PyTorch.
            if h % 2 == 0 and w % 2 == 0:
                padding = "same"
            else:
                stages.append(keras.layers.ZeroPadding2D(1, name=f"pad_{i}", **kw))
                padding = "valid"
            stages.append(
                keras.layers.Conv2D(
                    f, 4, strides=2, padding=padding, activation=act, name=f"encode_{i}", **conv_kw
                )
            )
            h, w = h // 2, w // 2
        for i, f in enumerate(reversed(self.filters[:-1])):
            stages.append(
                keras.layers.Conv2DTranspose(
                    f, 4, strides=2, padding="same", activation=act, name=f"decode_{i}", **conv_kw
                )
            )
        decoded = [(s >> self.depth) << (self.depth - 1) for s in (height, width)]
        k = self.final_kernel
        (sh, top, _), (sw, left, _) = (
            final_geometry(d, t, k) for d, t in zip(decoded, (height, width))
        )
        # Keras' default "valid" output pads to (n - 1) * s + max(k, s) positions, which
        # TensorFlow states as an output larger than the convolution's own and ONNX
        # converters turn into negative pads (refused by onnxruntime). So the convolution
        # gives its own (n - 1) * s + k positions (output_padding=0) and is cropped; where
        # the crop reaches past them (k < s), the decoder's output gets one zero row or
        # column more at the end, whose positions see only the bias, as before.
        extend = tuple(
            int(before + t > (d - 1) * s + k)
            for d, t, s, before in zip(decoded, (height, width), (sh, sw), (top, left))
        )
        stages.append(
            keras.layers.Conv2DTranspose(
                channels,
                k,
                strides=(sh, sw),
                output_padding=0,
                name="decode_final",
                **conv_kw,
            )
        )
        shape = tuple(input_shape)
        for stage in stages:
            if stage is stages[-1]:
                shape = (shape[0], shape[1] + extend[0], shape[2] + extend[1], shape[3])
            stage.build(shape)
            shape = stage.compute_output_shape(shape)
        if shape[1] - top < height or shape[2] - left < width or shape[3] != channels:
            # A bug in the geometry, not user input.
            raise RuntimeError(f"ConvAutoencoderGate produced {shape} for input {input_shape}.")
        self.stages = stages
        if self.logit_scale is not None:
            self.scale = self.add_weight(
                shape=(),
                initializer=keras.initializers.Constant(self.logit_scale),
                name="logit_scale",
            )
        # The excess of the last transposed conv is cropped by slicing (cheaper than a layer).
        self._crop = (top, left, height, width)
        self._extend = extend

    def gate(self, inputs):
        """The mask in (0, 1), same shape as ``inputs``."""
        x = inputs
        for stage in self.stages[:-1]:
            x = stage(x)
        if any(self._extend):
            x = ops.pad(x, ((0, 0), (0, self._extend[0]), (0, self._extend[1]), (0, 0)))
        x = self.stages[-1](x)
        top, left, height, width = self._crop
        # ops.slice, not indexing: on TensorFlow indexing is a strided slice whose gradient
        # (StridedSliceGrad) costs ~7x more on CPU; slice's gradient is a pad.
        x = ops.slice(x, (0, top, left, 0), (ops.shape(x)[0], height, width, inputs.shape[-1]))
        if self.logit_scale is not None:
            x = x * ops.cast(self.scale, x.dtype)
        return ops.sigmoid(x)

    def get_config(self):
        config = super().get_config()
        config.update(
            {
                "filters": list(self.filters),
                "final_kernel": self.final_kernel,
                "activation": self.activation,
                "kernel_initializer": self.kernel_initializer,
                "logit_scale": self.logit_scale,
            }
        )
        return config
