"""The base every attention layer shares: output = input x mask."""

import keras
from keras import ops


class AttentionGate(keras.layers.Layer):
    """A layer whose output is its input times a mask that `gate` computes.

    Subclasses define ``gate(inputs)`` (a mask in (0, 1) that broadcasts
    against the input); ``call`` applies it and the output shape is the
    input's. Not registered: it is never instantiated on its own.

    Example:
    >>> import numpy as np
    >>> class Half(AttentionGate):
    ...     def gate(self, inputs):
    ...         return 0.5
    >>> float(Half()(np.ones((1, 2, 2, 1), "float32"))[0, 0, 0, 0])
    0.5
    """

    def gate(self, inputs):
        raise NotImplementedError(f"{type(self).__name__} must define gate(inputs).")

    def call(self, inputs):
        return ops.multiply(inputs, self.gate(inputs))

    def compute_output_shape(self, input_shape):
        return input_shape
