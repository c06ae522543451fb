"""The parameter-free shortcut of He et al. 2016's CIFAR ResNets ("option A").

He et al., "Deep Residual Learning for Image Recognition", CVPR 2016, section
4.2. https://arxiv.org/abs/1512.03385

Where a stage halves the map and widens the channels, the shortcut keeps the
identity: it takes every second row and column and pads the new channels with
zeros. The paper does not say where the zeros go; here they are split evenly
before and after the input's channels, as in the widely used PyTorch
reproduction (Idelbayev's ``resnet_cifar10``), which changes no parameter count.
"""

import keras
from keras import ops


@keras.saving.register_keras_serializable(package="keras_attn")
class ZeroPadShortcut(keras.layers.Layer):
    """Identity shortcut to a smaller, wider map: subsample, then zero-pad channels.

    Args:
        channels: int, the output's channels (at least the input's).
        strides: int, default 2. Every ``strides``-th row and column is kept
            (output size ``ceil(size / strides)``, as a "same" convolution).
        **kwargs: base layer arguments.

    Example:
    >>> import numpy as np
    >>> layer = ZeroPadShortcut(8)
    >>> y = layer(np.ones((1, 5, 4, 4), "float32"))
    >>> tuple(y.shape), float(y[0, 0, 0, 1]), float(y[0, 0, 0, 2]), layer.count_params()
    ((1, 3, 2, 8), 0.0, 1.0, 0)
    """

    def __init__(self, channels, strides=2, **kwargs):
        super().__init__(**kwargs)
        for name, value in (("channels", channels), ("strides", strides)):
            if isinstance(value, bool) or not isinstance(value, int) or value < 1:
                raise ValueError(f"`{name}` must be a positive integer, got {value!r}.")
        self.channels = channels
        self.strides = strides

    def build(self, input_shape):
        if len(input_shape) != 4 or input_shape[-1] is None or input_shape[-1] > self.channels:
            raise ValueError(
                f"ZeroPadShortcut({self.channels}) needs (batch, height, width, channels) "
                f"inputs with at most {self.channels} channels, got {tuple(input_shape)}."
            )
        extra = self.channels - input_shape[-1]
        self._pads = ((0, 0), (0, 0), (0, 0), (extra // 2, extra - extra // 2))

    def call(self, inputs):
        s = self.strides
        x = inputs[:, ::s, ::s, :] if s > 1 else inputs
        return ops.pad(x, self._pads)

    def compute_output_shape(self, input_shape):
        def out(n):
            return None if n is None else -(-n // self.strides)

        return (input_shape[0], out(input_shape[1]), out(input_shape[2]), self.channels)

    def get_config(self):
        config = super().get_config()
        config.update({"channels": self.channels, "strides": self.strides})
        return config
