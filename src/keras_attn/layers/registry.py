"""The gates by name: `get` builds one, `register` adds your own.

Every name maps to a ``keras.layers.Layer`` subclass taking
``(batch, height, width, channels)`` and returning the same shape; `get` passes
its keyword arguments to the class, which derives its geometry (widths, kernel
sizes) from the input at build time, so one name serves any channel count.
"""

import types

import keras

from keras_attn._checks import did_you_mean
from keras_attn.layers.cbam import CBAM, CBAMChannelGate, CBAMSpatialGate
from keras_attn.layers.ceca import CircularECA
from keras_attn.layers.constant import ConstantGate
from keras_attn.layers.conv_ae import ConvAutoencoderGate
from keras_attn.layers.coord import CoordinateAttention
from keras_attn.layers.eca import ECA
from keras_attn.layers.ecam import ECAMLP
from keras_attn.layers.ese import EffectiveSqueezeExcitation
from keras_attn.layers.gc import GlobalContextGate
from keras_attn.layers.gca import GlobalContext
from keras_attn.layers.ge import GatherExcite
from keras_attn.layers.linear_ae import LinearAutoencoderGate
from keras_attn.layers.se import SqueezeExcitation
from keras_attn.layers.simam import SimAM

__all__ = ["GATES", "check_name", "get", "list_gates", "register", "unregister"]

_BUILT_IN = {
    "eca": ECA,
    "cbam": CBAM,
    "cbam_channel": CBAMChannelGate,
    "cbam_spatial": CBAMSpatialGate,
    "conv_ae": ConvAutoencoderGate,
    "linear_ae": LinearAutoencoderGate,
    "constant": ConstantGate,
    "se": SqueezeExcitation,
    "gc": GlobalContextGate,
    "coord": CoordinateAttention,
    "simam": SimAM,
    # timm's names (timm.layers.create_attn), meaning what they mean there.
    "gca": GlobalContext,
    "ese": EffectiveSqueezeExcitation,
    "ecam": ECAMLP,
    "ceca": CircularECA,
    "ge": GatherExcite,
}
_GATES = dict(_BUILT_IN)

#: Every registered name and its class, read-only (`register` adds to it).
GATES = types.MappingProxyType(_GATES)


def list_gates():
    """The registered gate names, built-in ones first, in registration order.

    Example:
    >>> list_gates()[:3]
    ('eca', 'cbam', 'cbam_channel')
    """
    return tuple(_GATES)


def check_name(name):
    """``name`` if a gate is registered under it, else a ``ValueError`` listing the valid names.

    Example:
    >>> check_name("se")
    'se'
    """
    if not isinstance(name, str) or name not in _GATES:
        raise ValueError(
            f"Unknown attention gate {name!r}.{did_you_mean(name, _GATES)} Valid gates: "
            f"{', '.join(_GATES)}."
        )
    return name


def get(kind, /, **kwargs):
    """A new, unbuilt gate layer by name.

    Args:
        kind: str, a registered name (`list_gates`): ``"se"``, ``"eca"``,
            ``"cbam"``, ``"conv_ae"``... (positional, so ``name=`` can name the layer).
        **kwargs: passed to the layer's constructor (its options, ``name``,
            ``dtype``...).

    Returns:
        A new ``keras.layers.Layer``; it builds for any channel count.

    Raises:
        ValueError: an unknown name (with the closest names and the valid ones).

    Example:
    >>> get("se", reduction=4, name="gate")
    <SqueezeExcitation name=gate, built=False>
    """
    return _GATES[check_name(kind)](**kwargs)


def register(name, cls):
    """Register a layer class under ``name``, so `get` and model configs can use it.

    The class should take ``(batch, H, W, C)`` inputs and return the same shape;
    subclass `keras_attn.layers.AttentionGate` (define ``gate(inputs)``, a mask)
    to get its pictures in `keras_attn.attention_maps`, and register it for
    serialization (``keras.saving.register_keras_serializable``) so saved models
    reload.

    Args:
        name: str, a new name (lower-case letters, digits and underscores).
        cls: a subclass of ``keras.layers.Layer``.

    Returns:
        ``cls``.

    Raises:
        ValueError: ``name`` is taken or malformed, or ``cls`` is not a layer class.

    Example:
    >>> from keras_attn.layers import AttentionGate
    >>> class Half(AttentionGate):
    ...     def gate(self, inputs):
    ...         return 0.5
    >>> _ = register("half", Half)
    >>> get("half", name="gate")
    <Half name=gate, built=False>
    >>> unregister("half")  # (the example cleans up after itself)
    """
    if not isinstance(name, str) or not name or not name.replace("_", "a").isalnum():
        raise ValueError(
            f"A gate name must be a non-empty string of letters, digits and underscores, "
            f"got {name!r}."
        )
    if name in _GATES:
        raise ValueError(
            f"A gate is already registered as {name!r} ({_GATES[name].__name__}); pick "
            f"another name. Taken: {', '.join(_GATES)}."
        )
    if not isinstance(cls, type) or not issubclass(cls, keras.layers.Layer):
        raise ValueError(
            f"`cls` must be a keras.layers.Layer subclass (the class, not an instance), "
            f"got {cls!r}."
        )
    _GATES[name] = cls
    return cls


def unregister(name):
    """Remove a gate that `register` added (built-in gates stay).

    Example:
    >>> _ = register("mine", ECA)
    >>> unregister("mine"); "mine" in GATES
    False
    """
    check_name(name)
    if name in _BUILT_IN:
        raise ValueError(f"{name!r} is a built-in gate and cannot be removed.")
    del _GATES[name]
