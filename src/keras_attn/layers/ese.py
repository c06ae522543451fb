"""Effective squeeze-and-excitation (eSE): timm's ``ese``.

Lee and Park, "CenterMask: Real-Time Anchor-Free Instance Segmentation", CVPR 2020.
https://arxiv.org/abs/1911.06667

Departure from the paper: none. SE with one fully connected layer ``C -> C`` instead
of the bottleneck (no channel information lost to the reduction) and a hard sigmoid,
as in the paper's VoVNetV2 and timm's ``EffectiveSEModule`` (whose experimental
``add_maxpool`` is not offered).
"""

import keras
from keras import ops

from keras_attn.layers._checks import check_rank4
from keras_attn.layers._gate import AttentionGate


@keras.saving.register_keras_serializable(package="keras_attn")
class EffectiveSqueezeExcitation(AttentionGate):
    """Effective SE: one dense layer over pooled channels, a hard sigmoid, scales each channel.

    Global average pooling gives one value per channel; a dense layer ``C -> C``
    (with bias) and a hard sigmoid (``relu6(z + 3) / 6``) give one weight per
    channel, which scales the input. Trainable weights: ``C^2 + C``.

    Args:
        **kwargs: base layer arguments (``name``, ``dtype``...).

    Input: ``(batch, height, width, channels)``. Output: the same shape.

    Example:
    >>> import numpy as np
    >>> layer = EffectiveSqueezeExcitation()
    >>> tuple(layer(np.ones((2, 4, 4, 16), "float32")).shape), layer.count_params()
    ((2, 4, 4, 16), 272)
    """

    def __init__(self, **kwargs):
        super().__init__(**kwargs)
        self.fc = None

    def build(self, input_shape):
        check_rank4(self, input_shape)
        channels = input_shape[-1]
        self.fc = keras.layers.Dense(channels, dtype=self.dtype_policy, name="fc")
        self.fc.build((None, channels))

    def gate(self, inputs):
        """Per-channel weights in [0, 1], shape ``(batch, 1, 1, C)``."""
        return ops.hard_sigmoid(self.fc(ops.mean(inputs, axis=(1, 2))))[:, None, None, :]
