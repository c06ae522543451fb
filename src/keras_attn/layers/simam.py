"""SimAM: a parameter-free attention from an energy function.

Yang, Zhang, Li and Xie, "SimAM: A Simple, Parameter-Free Attention Module for
Convolutional Neural Networks", ICML 2021. http://proceedings.mlr.press/v139/yang21o.html

Departure from the paper: none (the official code's formula, eq. 5 with the
variance over ``n = H W - 1``).
"""

import keras
from keras import ops

from keras_attn.layers._checks import check_rank4
from keras_attn.layers._gate import AttentionGate


@keras.saving.register_keras_serializable(package="keras_attn")
class SimAM(AttentionGate):
    """SimAM: each activation is weighted by how much it stands out in its channel.

    For every channel, with ``mu`` its mean over positions and
    ``d = (x - mu)^2``, the inverse of the minimal energy is
    ``e_inv = d / (4 (sum(d) / n + lambda)) + 0.5`` with ``n = H W - 1``, and
    the mask is ``sigmoid(e_inv)``: an element-wise (H x W x C) mask, no weights.

    Args:
        e_lambda: float > 0, default 1e-4. The energy's regulariser ``lambda``.
        **kwargs: base layer arguments.

    Input: ``(batch, height, width, channels)`` with at least two positions.
    Output: the same shape.

    Example:
    >>> import numpy as np
    >>> layer = SimAM()
    >>> tuple(layer(np.ones((2, 8, 8, 16), "float32")).shape), layer.count_params()
    ((2, 8, 8, 16), 0)
    """

    def __init__(self, e_lambda=1e-4, **kwargs):
        super().__init__(**kwargs)
        if isinstance(e_lambda, bool) or not isinstance(e_lambda, (int, float)) or e_lambda <= 0:
            raise ValueError(f"`e_lambda` must be a positive number, got {e_lambda!r}.")
        self.e_lambda = float(e_lambda)

    def build(self, input_shape):
        check_rank4(self, input_shape)
        if input_shape[1] * input_shape[2] < 2:
            raise ValueError(
                f"SimAM needs at least two positions (its variance divides by H*W - 1); got a "
                f"{input_shape[1]}x{input_shape[2]} feature map."
            )

    def gate(self, inputs):
        """The element-wise mask ``sigmoid(e_inv)``, shape ``(batch, H, W, C)``."""
        n = inputs.shape[1] * inputs.shape[2] - 1
        d = ops.square(ops.subtract(inputs, ops.mean(inputs, axis=(1, 2), keepdims=True)))
        variance = ops.sum(d, axis=(1, 2), keepdims=True) / n
        return ops.sigmoid(d / (4.0 * (variance + self.e_lambda)) + 0.5)

    def get_config(self):
        config = super().get_config()
        config["e_lambda"] = self.e_lambda
        return config
