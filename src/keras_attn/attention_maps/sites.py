"""A model's attention sites: which blocks sit where, what they see, and their gates."""

from __future__ import annotations

import inspect

import keras
import numpy as np

__all__ = [
    "attention_layers",
    "blend_alpha",
    "call_context",
    "call_gate",
    "check_image",
    "check_model",
    "checked_attention_layers",
    "is_additive",
    "measured_mask",
    "site_inputs",
]


def attention_layers(model):
    """The attention blocks of a model as ``[(site, kind, layer)]``, in network order.

    A block is a registered gate (`keras_attn.layers.registry.GATES`) with a mask
    (``gate(x)``) or, for a block that adds to its input (GC), pooling weights
    (``context_weights(x)``); a registered layer with neither is left out. A gate
    blended with its input (`keras_attn.layers.BlendedGate`, inserted with
    ``start="identity"``) counts as its gate's kind, and its mask is the effective
    one, ``1 + alpha (m - 1)``.

    Args:
        model: a Keras model; layers not named ``site{N}_...`` (a hand-built
            model) are numbered 1, 2, ... in order.

    Example:
    >>> import keras_attn
    >>> [(site, kind) for site, kind, _ in attention_layers(keras_attn.build("cnn_eca"))]
    [(1, 'eca'), (2, 'eca'), (3, 'eca'), (4, 'eca')]
    """
    from keras_attn.layers import BlendedGate
    from keras_attn.layers.registry import GATES

    kinds = {cls: kind for kind, cls in GATES.items()}
    found = []
    for layer in getattr(model, "layers", []):
        kind = kinds.get(type(layer.layer if isinstance(layer, BlendedGate) else layer))
        if kind is None or not (hasattr(layer, "gate") or is_additive(layer)):
            continue
        prefix, _, rest = layer.name.partition("_")
        site = int(prefix[4:]) if prefix.startswith("site") and prefix[4:].isdigit() else None
        # A gate named after the layer it follows (insert_attention): its registered kind.
        found.append((site, (rest or kind) if site is not None else kind, layer))
    # Layers not named site{N}_... (a hand-built model): number them in order.
    if any(site is None for site, _, _ in found):
        found = [(i, kind, layer) for i, (_, kind, layer) in enumerate(found, start=1)]
    return found


def check_model(model):
    """``model`` if it is a Keras model (whose layers can be inspected), else a ValueError.

    Example:
    >>> import keras_attn
    >>> check_model(keras_attn.build("cnn", blocks=[8, 16], dense_units=16)).name
    'cnn'
    """
    if not isinstance(model, keras.Model):
        raise ValueError(
            f"Attention maps need the Keras model (load the export's .keras file, e.g. "
            f"keras_attn.load(folder, format='keras')), got {type(model).__name__}: a "
            "SavedModel has no layers to inspect."
        )
    return model


def checked_attention_layers(model):
    """`attention_layers` of a Keras model, or a ValueError saying which variants have some.

    Example:
    >>> import keras_attn
    >>> len(checked_attention_layers(keras_attn.build("cnn_cbam", blocks=[8, 16])))
    4
    """
    layers = attention_layers(check_model(model))
    if not layers:
        from keras_attn.zoo import VARIANTS

        with_attention = [n for n, v in VARIANTS.items() if v["config"].get("attention")]
        raise ValueError(
            f"model {model.name!r} has no attention blocks; attention maps need a variant "
            f"with attention, e.g. {', '.join(with_attention)} (keras_attn.list_models()). "
            "Grad-CAM works for every model (keras_attn.attention_maps.grad_cam)."
        )
    return layers


def check_image(model, image):
    """``image`` as an array if it has ``model``'s input shape (one image, no batch axis).

    Example:
    >>> import numpy as np, keras_attn
    >>> model = keras_attn.build("cnn", input_shape=(28, 28, 1), blocks=[8, 16])
    >>> check_image(model, np.zeros((28, 28, 1), "uint8")).shape
    (28, 28, 1)
    """
    image = np.asarray(image)
    expected = tuple(model.input_shape[1:])
    if image.shape != expected:
        raise ValueError(
            f"The image has shape {image.shape} but model {model.name!r} takes {expected}; "
            "fit it first (keras_attn.predict.load_images(..., resize='crop'))."
        )
    return image


def site_inputs(model, layers):
    """A function from a batch of images to the inputs of ``layers`` (inference mode).

    Args:
        model: the Keras model.
        layers: ``[(site, kind, layer)]`` as `attention_layers` gives.

    Example:
    >>> import numpy as np, keras_attn
    >>> model = keras_attn.build("cnn_eca", blocks=[8, 16])
    >>> inputs = site_inputs(model, attention_layers(model))(np.zeros((2, 32, 32, 3)))
    >>> [tuple(x.shape) for x in inputs][:2]
    [(2, 32, 32, 8), (2, 30, 30, 8)]
    """
    probe = keras.Model(model.inputs[0], [layer.input for _, _, layer in layers])

    def inputs(images):
        out = probe(images, training=False)
        return list(out) if isinstance(out, (list, tuple)) else [out]

    return inputs


def call_gate(layer, x):
    """``layer.gate(x)`` in inference mode: the mask the layer multiplies ``x`` by.

    Example:
    >>> import numpy as np
    >>> from keras_attn.layers import ConstantGate
    >>> tuple(call_gate(ConstantGate(0.25), np.ones((1, 4, 4, 2), "float32")).shape)
    (1, 1, 1, 1)
    """
    if "training" in inspect.signature(layer.gate).parameters:
        return layer.gate(x, training=False)
    return layer.gate(x)


def is_additive(layer):
    """Whether a block adds to its input (`keras_attn.layers.GlobalContext`) instead of masking it.

    Example:
    >>> from keras_attn.layers import ECA, GlobalContext
    >>> is_additive(GlobalContext()), is_additive(ECA())
    (True, False)
    """
    return not hasattr(layer, "gate") and hasattr(layer, "context_weights")


def call_context(layer, x):
    """An additive block's pooling weights over positions (a softmax), shape ``(batch, H, W, 1)``.

    Where `keras_attn.layers.GlobalContext` pools the context it adds: its
    attention map, since it has no mask.

    Example:
    >>> import numpy as np
    >>> from keras_attn.layers import GlobalContext
    >>> layer = GlobalContext()
    >>> layer.build((None, 4, 4, 2))
    >>> weights = call_context(layer, np.ones((1, 4, 4, 2), "float32"))
    >>> tuple(weights.shape), float(np.asarray(weights).sum())
    ((1, 4, 4, 1), 1.0)
    """
    return layer.context_weights(x)


def blend_alpha(layer):
    """``alpha`` of a gate blended with its input (`keras_attn.layers.BlendedGate`), else None.

    Example:
    >>> from keras_attn.layers import ECA, BlendedGate
    >>> layer = BlendedGate(ECA())
    >>> layer.build((None, 4, 4, 8))
    >>> blend_alpha(layer), blend_alpha(ECA())
    (0.0, None)
    """
    from keras_attn.layers import BlendedGate

    if not isinstance(layer, BlendedGate):
        return None
    return float(keras.ops.convert_to_numpy(layer.alpha))


def measured_mask(layer, x):
    """What mask statistics measure of a block on ``x``: its mask (`call_gate`), or for a
    block that adds to its input (GC) its pooling weights times the positions, so that 1
    is an average.

    Example:
    >>> import numpy as np
    >>> from keras_attn.layers import GlobalContext
    >>> layer = GlobalContext()
    >>> layer.build((None, 4, 4, 2))
    >>> mask = measured_mask(layer, np.ones((1, 4, 4, 2), "float32"))
    >>> float(np.asarray(mask).mean())  # uniform weights over 16 positions: an average
    1.0
    """
    if is_additive(layer):
        return call_context(layer, x) * (x.shape[1] * x.shape[2])
    return call_gate(layer, x)
