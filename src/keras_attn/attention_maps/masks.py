"""Each attention block's mask for one image: as one upsampled map, or split into what it is."""

from __future__ import annotations

import keras
import numpy as np

from keras_attn.attention_maps.sites import (
    blend_alpha,
    call_context,
    call_gate,
    check_image,
    checked_attention_layers,
    is_additive,
    site_inputs,
)

__all__ = ["PARTS", "attention_maps", "gate_parts"]

#: What `gate_parts` splits a gate into ("context" and "addend": an additive block, GC).
PARTS = ("channel", "spatial", "constant", "context", "addend")


def _upsample(mask, size):
    from PIL import Image

    height, width = size
    if mask.shape == (height, width):
        return mask.astype("float32")
    img = Image.fromarray(mask.astype("float32"), mode="F")
    return np.asarray(img.resize((width, height), Image.Resampling.BILINEAR), dtype="float32")


def _gates_on(model, image):
    """``[(site, kind, layer, input)]`` for one image (a batch of one)."""
    layers = checked_attention_layers(model)
    image = check_image(model, image)
    inputs = site_inputs(model, layers)(image[None].astype("float32"))
    return [(site, kind, layer, x) for (site, kind, layer), x in zip(layers, inputs, strict=True)]


def attention_maps(model, image):
    """Each attention block's mask for one image, averaged over channels and upsampled.

    Args:
        model: a Keras model with keras_attn attention layers (a
            `keras_attn.AttentionCNN`, e.g. from `keras_attn.load`; a SavedModel
            has no layers to inspect).
        image: array ``(height, width, channels)`` of raw pixels 0..255 (uint8 or
            float) at the model's input size (see `keras_attn.predict.load_images`).

    Returns:
        list of dicts, in network order, one per attention layer: ``site`` (int),
        ``kind`` (e.g. ``"eca"``), ``name`` (the layer name), ``mask`` (float32
        ``(height, width)`` in [0, 1]), ``mask_shape`` (the gate's own shape,
        without the batch axis), ``channel_only`` (True when the mask does not
        vary over positions) and ``alpha`` (a blended gate's ``alpha``, whose
        ``mask`` is then the effective one, ``1 + alpha (m - 1)``; else None).
        `gate_parts` gives each gate in its own shape.
        GC adds to its input and has no mask: its ``mask`` is its pooling
        weights over positions divided by their maximum (1 where it pools most).

    Raises:
        ValueError: the model has no attention blocks, is not a Keras model, or
            the image does not have the model's input shape.

    Example:
    >>> import numpy as np
    >>> import keras_attn
    >>> model = keras_attn.build("cnn_conv_ae", blocks=[8, 16], dense_units=16)
    >>> maps = attention_maps(model, np.zeros((32, 32, 3), "uint8"))
    >>> [(m["site"], m["kind"], m["mask"].shape) for m in maps][:2]
    [(1, 'conv_ae', (32, 32)), (2, 'conv_ae', (32, 32))]
    """
    gates = _gates_on(model, image)
    size = tuple(model.input_shape[1:3])
    maps = []
    for site, kind, layer, x in gates:
        if is_additive(layer):  # GC: where it pools from, relative to the most
            gate = keras.ops.convert_to_numpy(call_context(layer, x))[0]
            gate = gate / gate.max()
        else:
            gate = keras.ops.convert_to_numpy(call_gate(layer, x))[0]  # (h, w, c), (1, 1, c)...
        maps.append(
            {
                "site": site,
                "kind": kind,
                "name": layer.name,
                "mask": np.clip(_upsample(gate.mean(axis=-1), size), 0.0, 1.0),
                "mask_shape": tuple(int(d) for d in gate.shape),
                "channel_only": gate.shape[0] == 1 and gate.shape[1] == 1,
                "alpha": blend_alpha(layer),
            }
        )
    return maps


def _part(site, kind, layer, part, gate):
    """One entry of `gate_parts` from a gate ``(h, w, c)`` of one image."""
    if part in ("channel", "addend"):
        values = gate.reshape(-1)  # (1, 1, c) -> (c,)
    elif part in ("spatial", "context"):
        values = gate.mean(axis=-1)  # (h, w, c) -> (h, w)
    else:
        values = float(gate.reshape(-1)[0])
    return {
        "site": site,
        "kind": kind,
        "name": layer.name,
        "part": part,
        "values": values,
        "shape": tuple(int(d) for d in gate.shape),
        "alpha": blend_alpha(layer),
    }


def _kind_of_gate(layer, shape):
    """``"constant"`` (`ConstantGate`), ``"channel"`` (one weight per channel) or ``"spatial"``."""
    from keras_attn.layers import BlendedGate, ConstantGate

    if isinstance(layer.layer if isinstance(layer, BlendedGate) else layer, ConstantGate):
        return "constant"
    return "channel" if shape[0] == 1 and shape[1] == 1 else "spatial"


def gate_parts(model, image):
    """Each attention block's gate for one image, as what it is: channel weights or a mask.

    A channel gate (ECA, CBAM's channel part) has one weight per channel and no
    spatial pattern; a spatial gate (CBAM's spatial part, ``cbam_spatial``) has
    one weight per position; the autoencoder gates have one per position and
    channel (their mean over channels is given); the constant gate
    (`keras_attn.layers.ConstantGate`) has one value, the same for every image.
    A CBAM block gives two parts: its channel gate, then its spatial gate (on
    the channel-weighted input, as in the block). A GC block adds to its input
    rather than masking it; it gives its ``"context"`` (the softmax weights
    over positions it pools with, summing to 1) and its ``"addend"`` (what it
    adds to each channel, any sign).

    Args:
        model: a Keras model with keras_attn attention layers (see `attention_maps`).
        image: array ``(height, width, channels)`` of raw pixels 0..255 at the
            model's input size.

    Returns:
        list of dicts, in network order: ``site``, ``kind`` (the block, e.g.
        ``"cbam"``), ``name`` (the layer name), ``part`` (one of `PARTS`),
        ``values`` (float32 ``(C,)`` for ``"channel"`` and ``"addend"``; float32
        ``(h, w)`` at the site's own resolution for ``"spatial"``, the mean over
        channels, and for ``"context"``; a float for ``"constant"``) and
        ``shape`` (the gate's shape without the batch axis, e.g. ``(1, 1, 64)``
        or ``(30, 30, 64)``) and ``alpha`` (as in `attention_maps`).

    Raises:
        ValueError: as `attention_maps`.

    Example:
    >>> import numpy as np
    >>> import keras_attn
    >>> model = keras_attn.build("cnn_cbam", blocks=[8, 16], dense_units=16)
    >>> parts = gate_parts(model, np.zeros((32, 32, 3), "uint8"))
    >>> [(p["site"], p["part"], np.shape(p["values"])) for p in parts][:2]
    [(1, 'channel', (8,)), (1, 'spatial', (32, 32))]
    """
    from keras_attn.layers import CBAM

    parts = []
    for site, kind, layer, x in _gates_on(model, image):
        if is_additive(layer):  # GC: where it pools from, and what it adds
            gates = [("context", call_context(layer, x)), ("addend", layer.transform(x))]
        elif isinstance(layer, CBAM):  # the block's two gates, each as what it is
            channel = layer.channel.gate(x)
            spatial = call_gate(layer.spatial, keras.ops.multiply(x, channel))
            gates = [("channel", channel), ("spatial", spatial)]
        else:
            gate = call_gate(layer, x)
            gates = [(_kind_of_gate(layer, tuple(gate.shape[1:])), gate)]
        for part, gate in gates:
            gate = keras.ops.convert_to_numpy(gate)[0].astype("float32")
            parts.append(_part(site, kind, layer, part, gate))
    return parts
