"""Efficient Channel Attention (ECA).

Wang et al., "ECA-Net: Efficient Channel Attention for Deep Convolutional Neural
Networks", CVPR 2020. https://arxiv.org/abs/1910.03151

Departure from the paper: none. The official code fixed ``k=3``; here the kernel
size follows the paper's adaptive rule unless ``kernel_size`` is given.
"""

import math

import keras
from keras import ops

from keras_attn.layers._checks import check_positive_int, check_rank4
from keras_attn.layers._gate import AttentionGate


def eca_kernel_size(channels, gamma=2, b=1):
    """The ECA paper's adaptive kernel size ``psi(C)``, rounded up to odd.

    ``t = floor(|(log2(C) + b) / gamma|)``; ``k = t`` if ``t`` is odd else
    ``t + 1``. So 64 channels give 3 and 128 channels give 5 (``t = 4`` is even
    and is rounded up, which is the part of the rule that most often surprises).

    Args:
        channels: int, number of channels ``C``.
        gamma: number, default 2.
        b: number, default 1.

    Returns:
        An odd int >= 1.

    Example:
    >>> eca_kernel_size(64), eca_kernel_size(128)
    (3, 5)
    """
    check_positive_int("channels", channels)
    t = int(abs((math.log2(channels) + b) / gamma))
    return max(t if t % 2 else t + 1, 1)


@keras.saving.register_keras_serializable(package="keras_attn")
class ECA(AttentionGate):
    """Efficient Channel Attention: a 1-D convolution across pooled channels.

    Global average pooling gives one value per channel; a 1-D convolution
    (no bias) across the channel axis mixes each channel with its ``k``
    neighbours; a sigmoid turns the result into one weight per channel, which
    scales the input. Adds only ``k`` trainable weights.

    Args:
        kernel_size: int or None, default None. The 1-D kernel size; None uses
            the paper's adaptive rule (`eca_kernel_size`).
        gamma: number, default 2. Parameter of the adaptive rule.
        b: number, default 1. Parameter of the adaptive rule.
        **kwargs: base layer arguments (``name``, ``dtype``...).

    Input: ``(batch, height, width, channels)``. Output: the same shape.

    Example:
    >>> import numpy as np
    >>> layer = ECA()
    >>> tuple(layer(np.ones((2, 8, 8, 64), "float32")).shape)
    (2, 8, 8, 64)
    >>> layer.kernel_size_
    3
    """

    def __init__(self, kernel_size=None, gamma=2, b=1, **kwargs):
        super().__init__(**kwargs)
        if kernel_size is not None:
            check_positive_int("kernel_size", kernel_size)
        self.kernel_size = kernel_size
        self.gamma = gamma
        self.b = b
        self.kernel_size_ = None
        self.conv = None

    def build(self, input_shape):
        k = self.resolve_kernel_size(input_shape)
        self.conv = keras.layers.Conv1D(
            1, k, padding="same", use_bias=False, dtype=self.dtype_policy, name="conv"
        )
        self.conv.build((None, input_shape[-1], 1))

    def resolve_kernel_size(self, input_shape):
        """Check the input shape; set and return ``kernel_size_``, the kernel size used."""
        check_rank4(self, input_shape)
        self.kernel_size_ = self.kernel_size or eca_kernel_size(input_shape[-1], self.gamma, self.b)
        return self.kernel_size_

    def gate(self, inputs):
        """Per-channel attention weights in (0, 1), shape ``(batch, 1, 1, C)``."""
        pooled = ops.mean(inputs, axis=(1, 2))  # (B, C)
        weights = self.conv(ops.expand_dims(pooled, -1))  # (B, C, 1)
        weights = ops.sigmoid(weights[..., 0])
        return weights[:, None, None, :]

    def get_config(self):
        config = super().get_config()
        config.update({"kernel_size": self.kernel_size, "gamma": self.gamma, "b": self.b})
        return config
