"""Argument and shape checks shared by the attention layers.

Every check raises ``ValueError`` that repeats the value received and says
what is valid, instead of a bare ``assert``.
"""

import keras

from keras_attn._checks import check_positive_int

__all__ = [
    "check_activation",
    "check_positive_int",
    "check_positive_ints",
    "check_rank4",
]

ACTIVATION_NAMES = ("relu", "gelu", "silu", "elu", "leaky_relu", "tanh", "sigmoid", "linear")


def check_positive_ints(name, values, allow_empty=False):
    """Raise ``ValueError`` unless ``values`` is a (non-empty) sequence of ints >= 1."""
    if isinstance(values, (str, bytes)) or not hasattr(values, "__iter__"):
        raise ValueError(f"`{name}` must be a list of positive integers, got {values!r}.")
    values = tuple(values)
    if not values and not allow_empty:
        raise ValueError(f"`{name}` must not be empty, got {values!r}.")
    for v in values:
        try:
            check_positive_int(name, v)
        except ValueError:
            raise ValueError(
                f"`{name}` must be a list of positive integers, got {values!r} (bad entry {v!r})."
            ) from None
    return values


def check_activation(name, value):
    """Raise ``ValueError`` unless ``value`` names a Keras activation."""
    try:
        keras.activations.get(value)
    except (ValueError, TypeError):
        raise ValueError(
            f"`{name}` must be a Keras activation name such as {', '.join(ACTIVATION_NAMES)}; "
            f"got {value!r}."
        ) from None
    return value


def check_rank4(layer, input_shape):
    """Raise ``ValueError`` unless the input is ``(batch, height, width, channels)``."""
    if len(input_shape) != 4:
        raise ValueError(
            f"{type(layer).__name__} expects inputs of shape (batch, height, width, channels) "
            f"(rank 4), got shape {tuple(input_shape)} (rank {len(input_shape)})."
        )
    for axis, label in ((1, "height"), (2, "width"), (3, "channels")):
        if input_shape[axis] is None:
            raise ValueError(
                f"{type(layer).__name__} needs a known {label}; got input shape "
                f"{tuple(input_shape)}."
            )
