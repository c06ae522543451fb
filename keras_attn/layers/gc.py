"""Global context (GC) block.

Cao, Xu, Lin, Wei and Hu, "GCNet: Non-local Networks Meet Squeeze-Excitation
Networks and Beyond", ICCV Workshops 2019. https://arxiv.org/abs/1904.11492

Departure from the paper: none. The paper's block adds its transform to the input
("add" fusion), so it is not a mask gate: it has no ``gate(inputs)``, and
`GlobalContext.context_weights` (where it pools from) and `GlobalContext.transform`
(what it adds) are what there is to look at. timm's ``GlobalContext`` defaults to
the "scale" fusion (a sigmoid channel gate); its ``gca`` is this block. The
hidden width and the LayerNorm epsilon follow timm (``C / 8``, 1e-6; the paper
uses ``C / 16`` or ``C / 4``), and the last convolution starts at zero as in the
official code, so the block starts as the identity.
"""

import keras
from keras import ops

from keras_attn.layers._checks import check_positive_int, check_rank4
from keras_attn.layers._widths import reduced_width


@keras.saving.register_keras_serializable(package="keras_attn")
class GlobalContext(keras.layers.Layer):
    """Global context block: one attention-pooled context vector, transformed, added everywhere.

    Context modelling: a 1x1 convolution ``C -> 1`` (with bias) and a softmax
    over the ``H W`` positions give pooling weights; their weighted sum of the
    input is one context vector per image. Transform: a 1x1 convolution
    ``C -> m``, LayerNorm, ReLU, a 1x1 convolution ``m -> C`` (with biases).
    Output = input + transform, the same at every position.
    Trainable weights: ``2 C m + 3 m + 2 C + 1``.

    Args:
        reduction: int, default 8 (timm's). ``m = C / reduction``, rounded as
            `keras_attn.layers.SqueezeExcitation` rounds (to a multiple of ``divisor``).
        hidden: int or None, default None. ``m`` itself, instead of the rule.
        divisor: int, default 1 (timm's).
        epsilon: float, default 1e-6 (timm's). LayerNorm epsilon.
        zero_init_last: bool, default True. Start the last convolution at zero
            (the block starts as the identity), as the official code does.
        **kwargs: base layer arguments.

    Example:
    >>> import numpy as np
    >>> layer = GlobalContext()
    >>> x = np.random.default_rng(0).normal(size=(2, 8, 8, 64)).astype("float32")
    >>> bool(np.allclose(layer(x), x)), layer.hidden_, layer.count_params()
    (True, 8, 1177)
    >>> tuple(layer.context_weights(x).shape), tuple(layer.transform(x).shape)
    ((2, 8, 8, 1), (2, 1, 1, 64))
    """

    def __init__(
        self, reduction=8, hidden=None, divisor=1, epsilon=1e-6, zero_init_last=True, **kwargs
    ):
        super().__init__(**kwargs)
        self.reduction = check_positive_int("reduction", reduction)
        self.hidden = None if hidden is None else check_positive_int("hidden", hidden)
        self.divisor = check_positive_int("divisor", divisor)
        self.epsilon = epsilon
        if not isinstance(zero_init_last, bool):
            raise ValueError(f"`zero_init_last` must be True or False, got {zero_init_last!r}.")
        self.zero_init_last = zero_init_last
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
            channels,
            kernel_initializer="zeros" if self.zero_init_last else "glorot_uniform",
            dtype=dtype,
            name="expand",
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

    def transform(self, inputs):
        """What the block adds at every position, shape ``(batch, 1, 1, C)``."""
        weights, flat = self._weights_and_positions(inputs)
        context = ops.matmul(weights[:, None, :], flat)[:, 0]  # (B, C)
        added = self.expand(ops.relu(self.norm(self.reduce(context))))
        return added[:, None, None, :]

    def call(self, inputs):
        return inputs + self.transform(inputs)

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
                "zero_init_last": self.zero_init_last,
            }
        )
        return config
