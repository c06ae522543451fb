"""Attention blocks as Keras 3 layers, and a factory that builds them by name.

Every layer takes ``(batch, height, width, channels)`` inputs, returns the same
shape, has a ``gate(inputs)`` method returning its multiplicative mask, is
written with ``keras.ops`` only (TensorFlow, JAX and PyTorch backends) and is
registered for serialization as ``keras_attn>ClassName``.
"""

from keras_attn._checks import did_you_mean
from keras_attn.layers.cbam import CBAM, CBAMChannelGate, CBAMSpatialGate
from keras_attn.layers.constant import ConstantGate
from keras_attn.layers.conv_ae import ConvAutoencoderGate, final_geometry, max_depth
from keras_attn.layers.eca import ECA, eca_kernel_size
from keras_attn.layers.linear_ae import LinearAutoencoderGate

ATTENTION_LAYERS = {
    "eca": ECA,
    "cbam": CBAM,
    "cbam_channel": CBAMChannelGate,
    "cbam_spatial": CBAMSpatialGate,
    "conv_ae": ConvAutoencoderGate,
    "linear_ae": LinearAutoencoderGate,
    "constant": ConstantGate,
}


def check_attention_name(kind):
    """Raise ``ValueError`` naming the valid blocks unless ``kind`` is one of them.

    Example:
    >>> check_attention_name("eca")
    'eca'
    """
    if kind not in ATTENTION_LAYERS:
        raise ValueError(
            f"Unknown attention block {kind!r}.{did_you_mean(kind, ATTENTION_LAYERS)} Valid "
            f"blocks: {', '.join(ATTENTION_LAYERS)}."
        )
    return kind


def create_attention(kind, **kwargs):
    """Build an attention layer by name.

    Args:
        kind: str, one of ``"eca"``, ``"cbam"``, ``"cbam_channel"``,
            ``"cbam_spatial"``, ``"conv_ae"``, ``"linear_ae"``, ``"constant"``.
        **kwargs: passed to the layer's constructor.

    Returns:
        A new, unbuilt ``keras.layers.Layer``.

    Example:
    >>> create_attention("conv_ae", filters=[8, 16], name="gate")
    <ConvAutoencoderGate name=gate, built=False>
    """
    return ATTENTION_LAYERS[check_attention_name(kind)](**kwargs)


__all__ = [
    "CBAM",
    "CBAMChannelGate",
    "CBAMSpatialGate",
    "ConstantGate",
    "ConvAutoencoderGate",
    "ECA",
    "LinearAutoencoderGate",
    "check_attention_name",
    "create_attention",
    "eca_kernel_size",
    "final_geometry",
    "max_depth",
]
