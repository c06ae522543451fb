"""A gate that starts as the identity: ``x + alpha (gate(x) - x)``, ``alpha`` learned from 0.

A sigmoid gate starts by multiplying its input by about 0.5 (ECA, SE, CBAM) or by a
mask that varies over the image; put into a trained network, it changes every
feature after it before training starts. Blended, the gate's output is mixed with
its input by one learned scalar ``alpha`` that starts at 0, so the network computes
exactly what it did (as ReZero's residual weight and the zero-initialised last
BatchNorm of a residual branch start a block as the identity), and training moves
``alpha`` away from 0 as far as the gate helps. Any gate works, whatever its form.
"""

import copy
import inspect

import keras
from keras import ops

from keras_attn.layers._checks import check_rank4


@keras.saving.register_keras_serializable(package="keras_attn")
class BlendedGate(keras.layers.Wrapper):
    """A gate blended with its input by a learned scalar: ``x + alpha (gate(x) - x)``.

    With ``alpha = 0`` (the default start) the output is the input, exactly; the
    gradient reaches ``alpha`` at once and the gate's own weights as soon as
    ``alpha`` is not 0. ``alpha`` is not bounded: above 1 the block goes beyond its
    gate, below 0 against it. For a gate that multiplies its input by a mask ``m``,
    the blend is the gate with the effective mask ``1 + alpha (m - 1)`` (`gate`); for
    a block that adds ``t`` to its input (`keras_attn.layers.GlobalContext`), it
    adds ``alpha t`` (`transform`).

    Args:
        layer: the gate, a ``keras.layers.Layer`` taking ``(batch, H, W, C)`` and
            returning the same shape (e.g. ``keras_attn.layers.get("eca")``), or
            its serialized config (a dict, as ``get_config`` stores it).
        alpha: float, default 0.0. The value ``alpha`` starts at.
        **kwargs: base layer arguments (``name``, ``dtype``...).

    Example:
    >>> import numpy as np
    >>> from keras_attn.layers import get
    >>> x = np.random.default_rng(0).normal(size=(2, 4, 4, 8)).astype("float32")
    >>> blended = BlendedGate(get("se", reduction=2))
    >>> bool(np.array_equal(blended(x), x)), float(blended.alpha.numpy())
    (True, 0.0)
    >>> float(np.asarray(blended.gate(x)).min())  # the effective mask: all ones at the start
    1.0
    """

    def __init__(self, layer, alpha=0.0, **kwargs):
        if isinstance(layer, dict):
            layer = keras.saving.deserialize_keras_object(copy.deepcopy(layer))
        if not isinstance(layer, keras.layers.Layer):
            raise ValueError(
                f"`layer` must be a keras.layers.Layer (a gate) or its serialized config, "
                f"got {type(layer).__name__}."
            )
        if isinstance(alpha, bool) or not isinstance(alpha, (int, float)):
            raise ValueError(f"`alpha` must be a number, got {alpha!r}.")
        super().__init__(layer, **kwargs)
        self.initial_alpha = float(alpha)
        self.alpha = None

    def build(self, input_shape):
        check_rank4(self, input_shape)
        super().build(input_shape)
        self.alpha = self.add_weight(
            shape=(),
            initializer=keras.initializers.Constant(self.initial_alpha),
            name="alpha",
        )

    def call(self, inputs, training=None):
        gated = ops.cast(self.layer(inputs, training=training), inputs.dtype)
        return inputs + ops.cast(self.alpha, inputs.dtype) * (gated - inputs)

    @property
    def gate(self):
        """``gate(x)``: the effective mask ``1 + alpha (m - 1)``, for a gate with a mask ``m``."""
        if not hasattr(self.layer, "gate"):
            raise AttributeError(f"{type(self.layer).__name__} has no mask: it adds to its input.")
        return self._effective_mask

    @property
    def transform(self):
        """``transform(x)``: what the blend adds, ``alpha t``, for a block that adds ``t``."""
        if not hasattr(self.layer, "transform"):
            raise AttributeError(f"{type(self.layer).__name__} does not add to its input.")
        return self._scaled_transform

    @property
    def context_weights(self):
        """The wrapped block's pooling weights (`keras_attn.layers.GlobalContext`)."""
        return self.layer.context_weights

    def _effective_mask(self, inputs, training=None):
        if "training" in inspect.signature(self.layer.gate).parameters:
            mask = self.layer.gate(inputs, training=training)
        else:
            mask = self.layer.gate(inputs)
        alpha = ops.cast(self.alpha, inputs.dtype)
        return 1.0 + alpha * (ops.cast(mask, inputs.dtype) - 1.0)

    def _scaled_transform(self, inputs):
        return ops.cast(self.alpha, inputs.dtype) * self.layer.transform(inputs)

    def compute_output_shape(self, input_shape):
        return input_shape

    def get_config(self):
        config = super().get_config()
        config["layer"].pop("build_config", None)  # the blend builds its gate
        config["alpha"] = self.initial_alpha
        return config
