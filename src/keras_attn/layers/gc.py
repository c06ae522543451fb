"""Global context (GC) gate with scale fusion: timm's ``gc``.

Cao, Xu, Lin, Wei and Hu, "GCNet: Non-local Networks Meet Squeeze-Excitation
Networks and Beyond", ICCV Workshops 2019. https://arxiv.org/abs/1904.11492

The paper's context modelling and transform, fused by scaling: the input times
the sigmoid of the transformed context, one weight per channel (the paper's
"scale" fusion, which it compares with "add"; timm's ``GlobalContext`` default and
its ``gc``). The additive block is `keras_attn.layers.GlobalContext` (``gca``).
Departure from timm: none (width ``C / 8``, LayerNorm epsilon 1e-6, no zero start).
"""

import keras
from keras import ops

from keras_attn.layers._context import GlobalContextBase
from keras_attn.layers._gate import AttentionGate


@keras.saving.register_keras_serializable(package="keras_attn")
class GlobalContextGate(GlobalContextBase, AttentionGate):
    """Global context gate: an attention-pooled context, transformed, scales every channel.

    Context modelling: a 1x1 convolution ``C -> 1`` (with bias) and a softmax
    over the ``H W`` positions give pooling weights, whose weighted sum of the
    input is one context vector per image. Transform: a 1x1 convolution
    ``C -> m``, LayerNorm, ReLU, a 1x1 convolution ``m -> C`` (with biases).
    Output = input x sigmoid(transform), one weight per channel.
    Trainable weights: ``2 C m + 3 m + 2 C + 1``.

    Args:
        reduction: int, default 8 (timm's). ``m = C / reduction``, rounded to a
            multiple of ``divisor``.
        hidden: int or None, default None. ``m`` itself, instead of the rule.
        divisor: int, default 1 (timm's).
        epsilon: float, default 1e-6 (timm's). LayerNorm epsilon.
        **kwargs: base layer arguments.

    Example:
    >>> import numpy as np
    >>> layer = GlobalContextGate()
    >>> x = np.random.default_rng(0).normal(size=(2, 8, 8, 64)).astype("float32")
    >>> tuple(layer(x).shape), layer.hidden_, layer.count_params()
    ((2, 8, 8, 64), 8, 1177)
    >>> tuple(layer.gate(x).shape), tuple(layer.context_weights(x).shape)
    ((2, 1, 1, 64), (2, 8, 8, 1))
    """

    def gate(self, inputs):
        """Per-channel weights in (0, 1), shape ``(batch, 1, 1, C)``."""
        return ops.sigmoid(self.transformed_context(inputs))
