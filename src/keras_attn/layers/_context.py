"""What the two global context blocks share: attention pooling and the transform of the context.

Cao et al. 2019's context modelling (a 1x1 convolution ``C -> 1`` and a softmax over
positions give pooling weights) and its transform (a 1x1 convolution ``C -> m``,
LayerNorm, ReLU, a 1x1 convolution ``m -> C``). `keras_attn.layers.GlobalContext`
adds the transformed context to its input ("add" fusion, timm's ``gca``);
`keras_attn.layers.GlobalContextGate` scales its input by its sigmoid ("scale"
fusion, timm's ``gc``).
"""

import keras
from keras import ops

from keras_attn.layers._checks import check_positive_int, check_rank4
from keras_attn.layers._widths import reduced_width


class GlobalContextBase(keras.layers.Layer):
    """The context pooling and transform of a GC block (not registered: never used alone).

    Args:
        reduction: int, default 8 (timm's). ``m = C / reduction``, rounded to a
            multiple of ``divisor``.
        hidden: int or None, default None. ``m`` itself, instead of the rule.
        divisor: int, default 1 (timm's).
        epsilon: float, default 1e-6 (timm's). LayerNorm epsilon.
        **kwargs: base layer arguments.
    """

    #: The initializer of the transform's last convolution.
    last_initializer = "glorot_uniform"

    def __init__(self, reduction=8, hidden=None, divisor=1, epsilon=1e-6, **kwargs):
        super().__init__(**kwargs)
        self.reduction = check_positive_int("reduction", reduction)
        self.hidden = None if hidden is None else check_positive_int("hidden", hidden)
        self.divisor = check_positive_int("divisor", divisor)
        self.epsilon = epsilon
        self.hidden_ = None

    def build(self, input_shape):
        check_rank4(self, input_shape)
        channels = input_shape[-1]
        hidden = self.hidden or reduced_width(channels, self.reduction, self.divisor)
        self.hidden_ = hidden
        dtype = self.dtype_policy
        self.attend = keras.layers.Dense(
            1, kernel_initializer="he_normal", dtype=dtype, name="attend"
        )
        self.reduce = keras.layers.Dense(hidden, dtype=dtype, name="reduce")
        self.norm = keras.layers.LayerNormalization(epsilon=self.epsilon, dtype=dtype, name="norm")
        self.expand = keras.layers.Dense(
            channels, kernel_initializer=self.last_initializer, dtype=dtype, name="expand"
        )
        self.attend.build((None, channels))
        self.reduce.build((None, channels))
        self.norm.build((None, hidden))
        self.expand.build((None, hidden))

    def _weights_and_positions(self, inputs):
        positions = inputs.shape[1] * inputs.shape[2]
        flat = ops.reshape(inputs, (-1, positions, inputs.shape[-1]))  # (B, HW, C)
        weights = ops.softmax(self.attend(flat)[..., 0], axis=-1)  # (B, HW)
        return weights, flat

    def context_weights(self, inputs):
        """Pooling weights over positions (a softmax, summing to 1), shape ``(batch, H, W, 1)``."""
        weights, _ = self._weights_and_positions(inputs)
        return ops.reshape(weights, (-1, inputs.shape[1], inputs.shape[2], 1))

    def transformed_context(self, inputs):
        """The pooled context through the transform, shape ``(batch, 1, 1, C)``."""
        weights, flat = self._weights_and_positions(inputs)
        context = ops.matmul(weights[:, None, :], flat)[:, 0]  # (B, C)
        return self.expand(ops.relu(self.norm(self.reduce(context))))[:, None, None, :]

    def compute_output_shape(self, input_shape):
        return input_shape

    def get_config(self):
        config = super().get_config()
        config.update(
            {
                "reduction": self.reduction,
                "hidden": self.hidden,
                "divisor": self.divisor,
                "epsilon": self.epsilon,
            }
        )
        return config
