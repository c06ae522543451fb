"""Gather-excite (GE): timm's ``ge``.

Hu, Shen, Albanie, Sun and Vedaldi, "Gather-Excite: Exploiting Feature Context in
Convolutional Neural Networks", NeurIPS 2018. https://arxiv.org/abs/1810.12348

The parameter-free gather (an average over a window of ``extent`` x ``extent``
steps, or over the whole map) followed by timm's excite: a two-layer MLP (with
biases, ReLU between), a sigmoid, and the result brought back to the map's size by
nearest-neighbour upsampling. Departures: from the paper, the MLP (the paper's
GE-theta-minus has none; ``use_mlp=False`` gives it), as in timm's default; from
timm, the gather with parameters (depth-wise convolutions, ``extra_params``) is not
offered. With ``extent=0`` (global) the block is SE with ``divisor=1``.
"""

import keras
import numpy as np
from keras import ops

from keras_attn.layers._checks import check_positive_int, check_rank4
from keras_attn.layers._gate import AttentionGate
from keras_attn.layers._widths import reduced_width


def _nearest(size, out):
    """PyTorch's ``interpolate(mode="nearest")`` source indices for ``out`` from ``size``."""
    scale = np.float32(size) / np.float32(out)
    return np.minimum(np.floor(np.arange(out, dtype=np.float32) * scale), size - 1).astype("int32")


@keras.saving.register_keras_serializable(package="keras_attn")
class GatherExcite(AttentionGate):
    """Gather-excite: average over a window (or everything), an MLP, a sigmoid, upsampled.

    Gather: with ``extent=0`` the mean over all positions (one value per
    channel); with ``extent=e`` an average pooling of window ``2e - 1``, stride
    ``e`` and padding ``e - 1`` that counts only the positions inside the map
    (``ceil(H / e)`` x ``ceil(W / e)`` values per channel). Excite: a 1x1 MLP
    ``C -> m -> C`` (with biases, ReLU), a sigmoid, and nearest-neighbour
    upsampling to ``H x W``: the mask scales each position and channel.
    Trainable weights: ``2 C m + m + C`` (none with ``use_mlp=False``).

    Args:
        extent: int, default 0. 0 gathers over the whole map; else an even
            number of steps (2, 4, 8 in the paper; timm requires it even).
        use_mlp: bool, default True (timm's). False: the paper's parameter-free
            GE-theta-minus, the sigmoid of the gathered values.
        reduction: int, default 16. ``m = C / reduction`` rounded (at least 1).
        hidden: int or None, default None. ``m`` itself, instead of the rule.
        divisor: int, default 1 (timm's). ``m`` is a multiple of it.
        **kwargs: base layer arguments.

    Example:
    >>> import numpy as np
    >>> layer = GatherExcite(extent=2)
    >>> x = np.ones((2, 7, 7, 32), "float32")
    >>> tuple(layer(x).shape), tuple(layer.gate(x).shape), layer.count_params()
    ((2, 7, 7, 32), (2, 7, 7, 32), 162)
    """

    def __init__(self, extent=0, use_mlp=True, reduction=16, hidden=None, divisor=1, **kwargs):
        super().__init__(**kwargs)
        if isinstance(extent, bool) or not isinstance(extent, int) or extent < 0 or extent % 2:
            raise ValueError(
                f"`extent` must be 0 (the whole map) or an even positive int, got {extent!r}."
            )
        if not isinstance(use_mlp, bool):
            raise ValueError(f"`use_mlp` must be True or False, got {use_mlp!r}.")
        self.extent = extent
        self.use_mlp = use_mlp
        self.reduction = check_positive_int("reduction", reduction)
        self.hidden = None if hidden is None else check_positive_int("hidden", hidden)
        self.divisor = check_positive_int("divisor", divisor)
        self.hidden_ = None

    def build(self, input_shape):
        check_rank4(self, input_shape)
        channels = input_shape[-1]
        if self.use_mlp:
            hidden = self.hidden or reduced_width(channels, self.reduction, self.divisor)
            self.hidden_ = hidden
            dtype = self.dtype_policy
            self.reduce = keras.layers.Dense(hidden, activation="relu", dtype=dtype, name="reduce")
            self.expand = keras.layers.Dense(channels, dtype=dtype, name="expand")
            self.reduce.build((None, channels))
            self.expand.build((None, hidden))

    def _gather(self, inputs):
        if not self.extent:
            return ops.mean(inputs, axis=(1, 2), keepdims=True)
        e = self.extent
        pad = [[0, 0], [e - 1, e - 1], [e - 1, e - 1], [0, 0]]
        window = {"pool_size": 2 * e - 1, "strides": e, "padding": "valid"}
        summed = ops.average_pool(ops.pad(inputs, pad), **window)
        inside = ops.pad(ops.ones_like(inputs[:1, :, :, :1]), pad)
        return summed / ops.average_pool(inside, **window)  # the mean over positions inside

    def gate(self, inputs):
        """The mask in (0, 1): ``(batch, 1, 1, C)`` with ``extent=0``, else ``(batch, H, W, C)``."""
        gathered = self._gather(inputs)
        if self.use_mlp:
            gathered = self.expand(self.reduce(gathered))
        mask = ops.sigmoid(gathered)
        height, width = inputs.shape[1], inputs.shape[2]
        if mask.shape[1] != 1 or mask.shape[2] != 1:  # back to the map's size, as timm
            mask = ops.take(mask, _nearest(mask.shape[1], height), axis=1)
            mask = ops.take(mask, _nearest(mask.shape[2], width), axis=2)
        return mask

    def get_config(self):
        config = super().get_config()
        config.update(
            {
                "extent": self.extent,
                "use_mlp": self.use_mlp,
                "reduction": self.reduction,
                "hidden": self.hidden,
                "divisor": self.divisor,
            }
        )
        return config
