"""Attention gates as Keras 3 layers, and their registry: `get` builds one by name.

Every layer takes ``(batch, height, width, channels)`` inputs, returns the same
shape, is written with ``keras.ops`` only (TensorFlow, JAX and PyTorch backends)
and is registered for serialization as ``keras_attn>ClassName``. The gates that
multiply their input by a mask subclass `AttentionGate` and have a
``gate(inputs)`` method returning it; `GlobalContext` adds to its input instead
(``transform(inputs)`` is what it adds). `BlendedGate` wraps any of them so that it
starts as the identity (`keras_attn.insert_attention`'s ``start="identity"``).

Example:
>>> import numpy as np
>>> gate = get("se", reduction=8)
>>> tuple(gate(np.ones((2, 4, 4, 32), "float32")).shape)
(2, 4, 4, 32)
"""

from keras_attn.layers._gate import AttentionGate
from keras_attn.layers.blend import BlendedGate
from keras_attn.layers.cbam import CBAM, CBAMChannelGate, CBAMSpatialGate
from keras_attn.layers.ceca import CircularECA
from keras_attn.layers.constant import ConstantGate
from keras_attn.layers.conv_ae import ConvAutoencoderGate, final_geometry, max_depth
from keras_attn.layers.coord import CoordinateAttention
from keras_attn.layers.eca import ECA, eca_kernel_size
from keras_attn.layers.ecam import ECAMLP
from keras_attn.layers.ese import EffectiveSqueezeExcitation
from keras_attn.layers.gc import GlobalContextGate
from keras_attn.layers.gca import GlobalContext
from keras_attn.layers.ge import GatherExcite
from keras_attn.layers.linear_ae import LinearAutoencoderGate
from keras_attn.layers.registry import check_name, get, list_gates, register, unregister
from keras_attn.layers.se import SqueezeExcitation
from keras_attn.layers.simam import SimAM

__all__ = [
    "AttentionGate",
    "BlendedGate",
    "CBAM",
    "CBAMChannelGate",
    "CBAMSpatialGate",
    "CircularECA",
    "ConstantGate",
    "ConvAutoencoderGate",
    "CoordinateAttention",
    "ECA",
    "ECAMLP",
    "EffectiveSqueezeExcitation",
    "GatherExcite",
    "GlobalContext",
    "GlobalContextGate",
    "LinearAutoencoderGate",
    "SimAM",
    "SqueezeExcitation",
    "check_name",
    "eca_kernel_size",
    "final_geometry",
    "get",
    "list_gates",
    "max_depth",
    "register",
    "unregister",
]
