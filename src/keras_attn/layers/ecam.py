"""ECA with a channel MLP (ECA-M): timm's ``ecam``.

ECA (Wang et al., CVPR 2020, https://arxiv.org/abs/1910.03151) whose single 1-D
convolution is replaced by a small MLP applied along the channel sequence: a
pointwise map of each pooled channel to ``m`` features (with bias), ReLU, and a 1-D
convolution of size ``k`` across channels back to one (with bias). A timm
experiment (its ``EcaModule(use_mlp=True)``), not in the paper.

Departure from timm: the kernel size follows the ECA paper's rule
(`keras_attn.layers.eca_kernel_size`), so below 8 channels it is 1 where timm's is
3; ``kernel_size=3`` gives timm's there.
"""

import keras
from keras import ops

from keras_attn.layers._checks import check_positive_int
from keras_attn.layers._widths import reduced_width
from keras_attn.layers.eca import ECA


@keras.saving.register_keras_serializable(package="keras_attn")
class ECAMLP(ECA):
    """ECA-M: each pooled channel to ``m`` features, ReLU, a 1-D convolution across channels.

    Global average pooling gives a sequence of ``C`` values; a pointwise layer
    ``1 -> m`` (with bias) and ReLU turn each into ``m`` features; a 1-D
    convolution of size ``k`` across the channel sequence (``m -> 1``, with bias)
    and a sigmoid give one weight per channel. Trainable weights:
    ``2 m + k m + 1``.

    Args:
        kernel_size: int or None, default None. None uses the ECA paper's rule.
        gamma: number, default 2. Parameter of the rule.
        b: number, default 1. Parameter of the rule.
        reduction: int, default 8 (timm's ``rd_ratio=1/8``). ``m = C / reduction``
            rounded as timm rounds (to a multiple of ``divisor``, never below 90 %).
        hidden: int or None, default None. ``m`` itself, instead of the rule.
        divisor: int, default 8 (timm's).
        **kwargs: base layer arguments.

    Example:
    >>> import numpy as np
    >>> layer = ECAMLP()
    >>> tuple(layer(np.ones((2, 4, 4, 64), "float32")).shape), layer.hidden_
    ((2, 4, 4, 64), 8)
    >>> layer.count_params()  # 2 m + k m + 1 with m = 8, k = 3
    41
    """

    def __init__(
        self, kernel_size=None, gamma=2, b=1, reduction=8, hidden=None, divisor=8, **kwargs
    ):
        super().__init__(kernel_size, gamma, b, **kwargs)
        self.reduction = check_positive_int("reduction", reduction)
        self.hidden = None if hidden is None else check_positive_int("hidden", hidden)
        self.divisor = check_positive_int("divisor", divisor)
        self.hidden_ = None
        self.expand = None

    def build(self, input_shape):
        channels, k = input_shape[-1], self.resolve_kernel_size(input_shape)
        hidden = self.hidden or reduced_width(channels, self.reduction, self.divisor, 0.9)
        self.hidden_ = hidden
        dtype = self.dtype_policy
        self.expand = keras.layers.Dense(hidden, activation="relu", dtype=dtype, name="expand")
        self.conv = keras.layers.Conv1D(1, k, padding="same", dtype=dtype, name="conv")
        self.expand.build((None, channels, 1))
        self.conv.build((None, channels, hidden))

    def gate(self, inputs):
        """Per-channel attention weights in (0, 1), shape ``(batch, 1, 1, C)``."""
        pooled = ops.mean(inputs, axis=(1, 2))  # (B, C)
        features = self.expand(ops.expand_dims(pooled, -1))  # (B, C, m)
        weights = ops.sigmoid(self.conv(features)[..., 0])
        return weights[:, None, None, :]

    def get_config(self):
        config = super().get_config()
        config.update({"reduction": self.reduction, "hidden": self.hidden, "divisor": self.divisor})
        return config
