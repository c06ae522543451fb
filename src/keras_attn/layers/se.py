"""Squeeze-and-excitation (SE).

Hu, Shen and Sun, "Squeeze-and-Excitation Networks", CVPR 2018.
https://arxiv.org/abs/1709.01507

Departure from the paper: none in the function. The hidden width follows timm's
``SEModule`` (``C / reduction`` rounded to a multiple of ``divisor``, default 8);
``divisor=1`` gives the paper's ``C / r``.
"""

import keras
from keras import ops

from keras_attn.layers._checks import check_positive_int, check_rank4
from keras_attn.layers._gate import AttentionGate
from keras_attn.layers._widths import reduced_width


@keras.saving.register_keras_serializable(package="keras_attn")
class SqueezeExcitation(AttentionGate):
    """Squeeze-and-excitation: a two-layer bottleneck over pooled channels scales each channel.

    Global average pooling ("squeeze") gives one value per channel; a dense layer
    ``C -> h`` with bias and ReLU, then ``h -> C`` with bias and a sigmoid
    ("excitation") give one weight per channel, which scales the input.
    Trainable weights: ``2 C h + h + C``.

    Args:
        reduction: int, default 16. The bottleneck's reduction ratio ``r``.
        hidden: int or None, default None. The bottleneck width ``h``; None
            derives it from the channels: ``C / reduction`` rounded to the
            nearest multiple of ``divisor`` (timm's rule).
        divisor: int, default 8 (timm's). ``divisor=1`` gives the paper's ``C / r``.
        **kwargs: base layer arguments (``name``, ``dtype``...).

    Input: ``(batch, height, width, channels)``. Output: the same shape.

    Example:
    >>> import numpy as np
    >>> layer = SqueezeExcitation()
    >>> tuple(layer(np.ones((2, 8, 8, 64), "float32")).shape)
    (2, 8, 8, 64)
    >>> layer.hidden_, layer.count_params()
    (8, 1096)
    """

    def __init__(self, reduction=16, hidden=None, divisor=8, **kwargs):
        super().__init__(**kwargs)
        self.reduction = check_positive_int("reduction", reduction)
        self.hidden = None if hidden is None else check_positive_int("hidden", hidden)
        self.divisor = check_positive_int("divisor", divisor)
        self.hidden_ = None
        self.reduce = None
        self.expand = None

    def build(self, input_shape):
        check_rank4(self, input_shape)
        channels = input_shape[-1]
        hidden = self.hidden or reduced_width(channels, self.reduction, self.divisor)
        self.hidden_ = hidden
        self.reduce = keras.layers.Dense(
            hidden, activation="relu", dtype=self.dtype_policy, name="reduce"
        )
        self.expand = keras.layers.Dense(channels, dtype=self.dtype_policy, name="expand")
        self.reduce.build((None, channels))
        self.expand.build((None, hidden))

    def gate(self, inputs):
        """Per-channel weights in (0, 1), shape ``(batch, 1, 1, C)``."""
        pooled = ops.mean(inputs, axis=(1, 2))
        return ops.sigmoid(self.expand(self.reduce(pooled)))[:, None, None, :]

    def get_config(self):
        config = super().get_config()
        config.update({"reduction": self.reduction, "hidden": self.hidden, "divisor": self.divisor})
        return config
