"""Coordinate attention.

Hou, Zhou and Feng, "Coordinate Attention for Efficient Mobile Network Design",
CVPR 2021. https://arxiv.org/abs/2103.02907

Departure from the paper: none. The defaults are the official code's
(``reduction=32``, at least 8 hidden channels, convolutions with biases,
BatchNorm and h-swish); timm's ``CoordAttn`` uses another width rule and no biases.
"""

import keras
from keras import ops

from keras_attn.layers._checks import check_positive_int, check_rank4
from keras_attn.layers._gate import AttentionGate


@keras.saving.register_keras_serializable(package="keras_attn")
class CoordinateAttention(AttentionGate):
    """Coordinate attention: one weight per row and channel times one per column and channel.

    The input is averaged along its width (one vector per row, ``H x C``) and
    along its height (one per column, ``W x C``); the ``H + W`` vectors go
    through one shared 1x1 convolution ``C -> m`` (with bias), BatchNorm and
    h-swish; split back, a 1x1 convolution ``m -> C`` with a sigmoid gives
    ``a_h`` (``H x 1 x C``) and another ``a_w`` (``1 x W x C``).
    Output = input x ``a_h`` x ``a_w``. Trainable weights: ``3 C m + 3 m + 2 C``.

    Args:
        reduction: int, default 32. ``m = max(min_hidden, C // reduction)``.
        hidden: int or None, default None. ``m`` itself, instead of the rule.
        min_hidden: int, default 8.
        momentum: float, default 0.9. BatchNorm momentum (Keras convention;
            PyTorch's default, the official code's framework).
        epsilon: float, default 1e-5. BatchNorm epsilon (PyTorch's default).
        **kwargs: base layer arguments.

    Example:
    >>> import numpy as np
    >>> layer = CoordinateAttention()
    >>> tuple(layer(np.ones((2, 8, 6, 64), "float32")).shape)
    (2, 8, 6, 64)
    >>> layer.hidden_, sum(int(np.prod(w.shape)) for w in layer.trainable_weights)
    (8, 1688)
    """

    def __init__(
        self, reduction=32, hidden=None, min_hidden=8, momentum=0.9, epsilon=1e-5, **kwargs
    ):
        super().__init__(**kwargs)
        self.reduction = check_positive_int("reduction", reduction)
        self.hidden = None if hidden is None else check_positive_int("hidden", hidden)
        self.min_hidden = check_positive_int("min_hidden", min_hidden)
        self.momentum = momentum
        self.epsilon = epsilon
        self.hidden_ = None

    def build(self, input_shape):
        check_rank4(self, input_shape)
        height, width, channels = input_shape[1:]
        hidden = self.hidden or max(self.min_hidden, channels // self.reduction)
        self.hidden_ = hidden
        dtype = self.dtype_policy
        self.reduce = keras.layers.Dense(hidden, dtype=dtype, name="reduce")
        self.norm = keras.layers.BatchNormalization(
            momentum=self.momentum, epsilon=self.epsilon, dtype=dtype, name="norm"
        )
        self.height_conv = keras.layers.Dense(channels, dtype=dtype, name="height_conv")
        self.width_conv = keras.layers.Dense(channels, dtype=dtype, name="width_conv")
        self.reduce.build((None, height + width, channels))
        self.norm.build((None, height + width, hidden))
        self.height_conv.build((None, height, hidden))
        self.width_conv.build((None, width, hidden))

    def gate(self, inputs, training=None):
        """The mask ``a_h * a_w``, shape ``(batch, H, W, C)``."""
        height = inputs.shape[1]
        rows = ops.mean(inputs, axis=2)  # (B, H, C): pooled along the width
        cols = ops.mean(inputs, axis=1)  # (B, W, C): pooled along the height
        y = self.reduce(ops.concatenate([rows, cols], axis=1))
        y = ops.hard_silu(self.norm(y, training=training))
        a_h = ops.sigmoid(self.height_conv(y[:, :height]))
        a_w = ops.sigmoid(self.width_conv(y[:, height:]))
        return a_h[:, :, None, :] * a_w[:, None, :, :]

    def call(self, inputs, training=None):
        return inputs * self.gate(inputs, training=training)

    def get_config(self):
        config = super().get_config()
        config.update(
            {
                "reduction": self.reduction,
                "hidden": self.hidden,
                "min_hidden": self.min_hidden,
                "momentum": self.momentum,
                "epsilon": self.epsilon,
            }
        )
        return config
