"""Global context (GC) block with additive fusion: timm's ``gca``, the paper's block.

Cao, Xu, Lin, Wei and Hu, "GCNet: Non-local Networks Meet Squeeze-Excitation
Networks and Beyond", ICCV Workshops 2019. https://arxiv.org/abs/1904.11492

Departure from the paper: none. The paper's block adds its transform to the input
("add" fusion), so it is not a mask gate: it has no ``gate(inputs)``, and
`GlobalContext.context_weights` (where it pools from) and `GlobalContext.transform`
(what it adds) are what there is to look at. timm's ``gca`` is this block; timm's
``gc`` (`keras_attn.layers.GlobalContextGate`) scales instead. The hidden width and
the LayerNorm epsilon follow timm (``C / 8``, 1e-6; the paper uses ``C / 16`` or
``C / 4``), and the last convolution starts at zero as in the official code, so the
block starts as the identity.
"""

import keras

from keras_attn.layers._context import GlobalContextBase


@keras.saving.register_keras_serializable(package="keras_attn")
class GlobalContext(GlobalContextBase):
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
        super().__init__(reduction, hidden, divisor, epsilon, **kwargs)
        if not isinstance(zero_init_last, bool):
            raise ValueError(f"`zero_init_last` must be True or False, got {zero_init_last!r}.")
        self.zero_init_last = zero_init_last
        self.last_initializer = "zeros" if zero_init_last else "glorot_uniform"

    @property
    def starts_as_identity(self):
        """Whether the block is the identity before training (its last convolution at zero)."""
        return self.zero_init_last

    def transform(self, inputs):
        """What the block adds at every position, shape ``(batch, 1, 1, C)``."""
        return self.transformed_context(inputs)

    def call(self, inputs):
        return inputs + self.transform(inputs)

    def get_config(self):
        config = super().get_config()
        config["zero_init_last"] = self.zero_init_last
        return config
