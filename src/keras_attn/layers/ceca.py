"""Circular efficient channel attention (CECA): timm's ``ceca``.

ECA (Wang et al., CVPR 2020, https://arxiv.org/abs/1910.03151) whose 1-D convolution
across channels pads circularly instead of with zeros: the first and last channels
are neighbours, since channels have no order with edges. A timm variant (its
``CecaModule``), not in the paper.

Departure from timm: the kernel size follows the ECA paper's rule
(`keras_attn.layers.eca_kernel_size`), as `keras_attn.layers.ECA` does, so below 8
channels it is 1 where timm's is 3; ``kernel_size=3`` gives timm's there.
"""

import keras
from keras import ops

from keras_attn.layers.eca import ECA


@keras.saving.register_keras_serializable(package="keras_attn")
class CircularECA(ECA):
    """ECA with circular padding: a 1-D convolution across pooled channels that wraps around.

    Global average pooling gives one value per channel; the sequence of channels
    is padded with ``(k - 1) / 2`` channels from its other end on each side, a
    1-D convolution (no bias) of odd size ``k`` mixes each channel with its
    neighbours, and a sigmoid gives one weight per channel. ``k`` trainable weights.

    Args:
        kernel_size: odd int or None, default None. None uses the ECA paper's rule.
        gamma: number, default 2. Parameter of the rule.
        b: number, default 1. Parameter of the rule.
        **kwargs: base layer arguments.

    Example:
    >>> import numpy as np
    >>> layer = CircularECA()
    >>> tuple(layer(np.ones((2, 4, 4, 64), "float32")).shape), layer.count_params()
    ((2, 4, 4, 64), 3)
    """

    def build(self, input_shape):
        k, channels = self.resolve_kernel_size(input_shape), input_shape[-1]
        if k % 2 == 0 or (k - 1) // 2 > channels:
            raise ValueError(
                f"CircularECA needs an odd kernel_size of at most 2 C + 1 = {2 * channels + 1} "
                f"(it pads (k - 1) / 2 channels from the other end); got {k}."
            )
        self.conv = keras.layers.Conv1D(
            1, k, padding="valid", use_bias=False, dtype=self.dtype_policy, name="conv"
        )
        self.conv.build((None, channels + k - 1, 1))

    def gate(self, inputs):
        """Per-channel attention weights in (0, 1), shape ``(batch, 1, 1, C)``."""
        pooled = ops.mean(inputs, axis=(1, 2))  # (B, C)
        pad = (self.kernel_size_ - 1) // 2
        if pad:
            pooled = ops.concatenate([pooled[:, -pad:], pooled, pooled[:, :pad]], axis=-1)
        weights = ops.sigmoid(self.conv(ops.expand_dims(pooled, -1))[..., 0])
        return weights[:, None, None, :]
