"""Constant gate: the ablation of a learned mask.

Multiplies its input by a fixed number and has no weights. Put where a learned
gate sits (``cnn_conv_ae_const`` puts it where ``cnn_conv_ae`` has its
autoencoder), it tells what that gate gives beyond a constant scaling: a gate
whose mask stays near 0.5 is this layer with extra parameters.
"""

import keras
from keras import ops

from keras_attn.layers._gate import AttentionGate


@keras.saving.register_keras_serializable(package="keras_attn")
class ConstantGate(AttentionGate):
    """Scales its input by ``value``: an attention gate whose mask never changes.

    Args:
        value: float in (0, 1], default 0.5 (a sigmoid gate's output at zero logits).
        **kwargs: base layer arguments.

    Example:
    >>> import numpy as np
    >>> gate = ConstantGate()
    >>> float(gate(np.full((1, 2, 2, 3), 4.0, "float32"))[0, 0, 0, 0]), gate.count_params()
    (2.0, 0)
    """

    def __init__(self, value=0.5, **kwargs):
        super().__init__(**kwargs)
        if isinstance(value, bool) or not isinstance(value, (int, float)) or not 0 < value <= 1:
            raise ValueError(f"`value` must be a number in (0, 1], got {value!r}.")
        self.value = float(value)

    def gate(self, inputs):
        """The mask: ``value`` for every image, shape ``(batch, 1, 1, 1)``."""
        return ops.full((ops.shape(inputs)[0], 1, 1, 1), self.value, dtype=inputs.dtype)

    def get_config(self):
        config = super().get_config()
        config["value"] = self.value
        return config
