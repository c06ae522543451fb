"""Linear autoencoder attention gate, acting along the width axis.

The study's spatial gate in its linear form: each row of each channel (a vector
of length ``W``) goes through a small fully connected autoencoder whose sigmoid
output is a mask for that row. Not from a prior paper; docs/study.md gives the
study's layer sizes ``W -> 128 -> 64 -> 12 -> 64 -> 128 -> W``.

Implementation note: the width axis is moved last and the dense layers run as
one matrix product over all ``batch * H * C`` rows, which is what makes this
gate cost what its arithmetic costs.
"""

import keras
from keras import ops

from keras_attn.layers._checks import check_activation, check_positive_ints, check_rank4
from keras_attn.layers._gate import AttentionGate


@keras.saving.register_keras_serializable(package="keras_attn")
class LinearAutoencoderGate(AttentionGate):
    """Fully connected autoencoder over each row's width, used as a sigmoid mask.

    With ``units=(128, 64, 12)`` the row of length ``W`` is mapped
    ``W -> 128 -> 64 -> 12 -> 64 -> 128 -> W``: every layer but the bottleneck
    and the output uses ``activation``; the bottleneck is linear and the output
    a sigmoid. Output = input x mask. Trainable weights: ``257 * W + 18,316``
    with the default units.

    Args:
        units: sequence of ints, default ``(128, 64, 12)``. Encoder widths, the
            last one being the bottleneck; the decoder mirrors them.
        activation: str, default ``"relu"``. Hidden activation.
        **kwargs: base layer arguments.

    Example:
    >>> import numpy as np
    >>> gate = LinearAutoencoderGate()
    >>> tuple(gate(np.ones((2, 13, 13, 128), "float32")).shape)
    (2, 13, 13, 128)
    >>> gate.count_params()
    21657
    """

    def __init__(self, units=(128, 64, 12), activation="relu", **kwargs):
        super().__init__(**kwargs)
        self.units = check_positive_ints("units", units)
        self.activation = check_activation("activation", activation)
        self.dense_layers = []

    def build(self, input_shape):
        check_rank4(self, input_shape)
        width = input_shape[2]
        widths = list(self.units) + list(reversed(self.units[:-1])) + [width]
        bottleneck = len(self.units) - 1
        self.dense_layers = []
        fan_in = width
        for i, w in enumerate(widths):
            if i == len(widths) - 1:
                act = "sigmoid"
            elif i == bottleneck:
                act = None
            else:
                act = self.activation
            layer = keras.layers.Dense(
                w, activation=act, dtype=self.dtype_policy, name=f"dense_{i}"
            )
            layer.build((None, fan_in))
            self.dense_layers.append(layer)
            fan_in = w

    def gate(self, inputs):
        """The mask in (0, 1), shape ``(batch, H, W, C)``."""
        _, height, width, channels = inputs.shape
        # All batch * H * C rows as one matrix: each dense layer is one large matmul.
        x = ops.reshape(ops.transpose(inputs, (0, 1, 3, 2)), (-1, width))
        for layer in self.dense_layers:
            x = layer(x)
        return ops.transpose(ops.reshape(x, (-1, height, channels, width)), (0, 1, 3, 2))

    def get_config(self):
        config = super().get_config()
        config.update({"units": list(self.units), "activation": self.activation})
        return config
