"""`insert_attention`: an attention gate after chosen layers of any functional Keras model.

The model is rebuilt with Keras' own graph tool, ``keras.models.clone_model``:
every layer is cloned from its config (a ``clone_function``) and, where a
chosen layer is called, a ``call_function`` puts the gate on its output. The
clones then get the original layers' weights, so the new model computes what
the old one did until its gates learn (a gate's output is its input times a
mask), and the original model is left as it was.
"""

from __future__ import annotations

import keras

from keras_attn import layers as gate_layers
from keras_attn._checks import did_you_mean

__all__ = ["insert_attention"]


def _feature_map_layers(model):
    """Names of the layers of ``model`` (inputs excluded) whose output is ``(batch, h, w, c)``."""
    names = []
    for layer in model.layers:
        if isinstance(layer, keras.layers.InputLayer):
            continue
        try:
            rank = len(layer.output.shape)
        except (AttributeError, ValueError):  # never called, or called several times
            rank = len(layer._inbound_nodes[0].outputs[0].shape) if layer._inbound_nodes else 0
        if rank == 4:
            names.append(layer.name)
    return names


def _some(names, n=6):
    shown = ", ".join(names[:n])
    return f"{shown}, ... ({len(names)} in all)" if len(names) > n else shown


def _chosen(model, after):
    """The names ``after`` selects, checked: layers of ``model`` with feature-map outputs."""
    maps = _feature_map_layers(model)
    everything = [layer.name for layer in model.layers]
    if callable(after):
        chosen = [layer.name for layer in model.layers if after(layer)]
        if not chosen:
            raise ValueError(
                f"`after` matched no layer of model {model.name!r}. Its layers with feature "
                f"maps (batch, height, width, channels) are: {_some(maps)}."
            )
    else:
        if isinstance(after, str):
            after = [after]
        try:
            chosen = list(after)
        except TypeError:
            raise ValueError(
                f"`after` must be a layer name, a list of layer names or a function "
                f"layer -> bool, got {after!r}."
            ) from None
        unknown = [n for n in chosen if n not in everything]
        if unknown:
            hints = "".join(did_you_mean(n, everything) for n in unknown[:3])
            raise ValueError(
                f"Model {model.name!r} has no layer named {', '.join(map(repr, unknown))}."
                f"{hints} Its layers with feature maps (batch, height, width, channels) "
                f"are: {_some(maps)}."
            )
    not_maps = [n for n in chosen if n not in maps]
    if not_maps:
        raise ValueError(
            f"Attention gates act on feature maps (batch, height, width, channels), but "
            f"{', '.join(map(repr, not_maps[:3]))} of model {model.name!r} "
            f"{'does' if len(not_maps) == 1 else 'do'} not output one (inputs are not "
            f"choosable). Layers with feature maps: {_some(maps)}."
        )
    return set(chosen)


def _gate_factory(gate, options):
    """``make(base_name) -> new layer``: the gates to put after one layer, in order."""
    if callable(gate) and not isinstance(gate, str):
        if options:
            raise ValueError(
                "Gate options go to a gate given by name (e.g. insert_attention(model, 'se', "
                f"..., reduction=8)); a callable builds its own layer. Got {sorted(options)}."
            )

        def make_called(base):
            layer = gate()
            if not isinstance(layer, keras.layers.Layer):
                raise ValueError(
                    f"`gate` must return a new keras.layers.Layer, returned {type(layer).__name__}."
                )
            return [layer]

        return make_called
    kinds = [gate] if isinstance(gate, str) else list(gate) if gate else []
    if not kinds or not all(isinstance(k, str) for k in kinds):
        raise ValueError(
            "`gate` must be a registered gate name, a list of them, or a function returning "
            f"a new layer; got {gate!r}. Registered: {', '.join(gate_layers.list_gates())}."
        )
    for kind in kinds:
        gate_layers.check_name(kind)
    if options and len(kinds) > 1:
        raise ValueError(
            "Gate options are for one named gate; for several, pass a function that builds "
            "them (gate=lambda: keras_attn.layers.get('eca', ...))."
        )
    gate_layers.get(kinds[0], **options)  # bad options fail before the clone

    def make_named(base):
        return [gate_layers.get(k, name=f"{base}_{k}", **options) for k in kinds]

    return make_named


def insert_attention(model, gate, after, **options):
    """A copy of a functional Keras model with attention gates after the chosen layers.

    The copy has the original's weights (the original is not changed) and every
    gate's own new weights; it is not compiled. Gates are named after the layer
    they follow, ``{layer}_{gate}`` (``block_1_project_BN_eca``); a layer called
    several times gets a gate after every call.

    Args:
        model: a functional ``keras.Model`` (a built ``keras.Sequential`` works
            too): ``keras.applications.*``, a keras_attn model, your own.
        gate: str, a registered gate's name (``"eca"``, ``"cbam"``...; see
            ``keras_attn.layers``), a list of them (applied in order), or a
            function with no arguments returning a new ``keras.layers.Layer``.
        after: a layer name, a list of them, or a function ``layer -> bool``
            called on every layer of ``model``. The layers must output feature
            maps ``(batch, height, width, channels)``.
        **options: the named gate's options, e.g. ``kernel_size=3``.

    Returns:
        A new functional ``keras.Model`` with the same inputs and outputs.

    Raises:
        ValueError: ``after`` names a layer that does not exist or matches
            nothing (the message names layers that would do), picks a layer
            without a feature map, or ``gate`` is not a registered gate.

    Example:
    >>> import keras
    >>> inputs = keras.Input((8, 8, 3))
    >>> x = keras.layers.Conv2D(4, 3, name="conv")(inputs)
    >>> x = keras.layers.Conv2D(8, 3, name="conv_2")(x)
    >>> outputs = keras.layers.Dense(2)(keras.layers.GlobalAveragePooling2D()(x))
    >>> base = keras.Model(inputs, outputs)
    >>> model = insert_attention(base, "cbam", after=lambda layer: "conv" in layer.name)
    >>> [layer.name for layer in model.layers][1:5]
    ['conv', 'conv_cbam', 'conv_2', 'conv_2_cbam']
    >>> model = insert_attention(base, "eca", after=["conv_2"], kernel_size=5)
    >>> model.count_params() - base.count_params()
    5

    With ``keras.applications.MobileNetV2(weights=None)``, ``after=lambda layer:
    layer.name.endswith("_project_BN")`` puts a gate at the end of every
    inverted-residual block (before its add); with ``ResNet50``,
    ``layer.name.endswith("_3_bn")`` after every bottleneck's last BatchNorm.
    """
    if isinstance(model, keras.Sequential):
        if not model.built:
            raise ValueError("Build the Sequential model first (give it a keras.Input).")
        model = keras.Model(model.inputs, model.outputs, name=model.name)
    if not isinstance(model, keras.Model):
        raise ValueError(f"`model` must be a functional keras.Model, got {type(model).__name__}.")
    try:
        model.inputs  # noqa: B018 - a subclassed model has no graph to rebuild
    except AttributeError:
        raise ValueError(
            f"Model {model.name!r} is not functional (a subclassed keras.Model has no layer "
            "graph to rebuild): insert_attention needs keras.Model(inputs, outputs)."
        ) from None
    chosen = _chosen(model, after)
    make = _gate_factory(gate, options)
    taken = {layer.name for layer in model.layers}
    pairs = []

    def clone(layer):
        new = layer.__class__.from_config(layer.get_config())
        pairs.append((layer, new))
        return new

    def call(layer, *args, **kwargs):
        out = layer(*args, **kwargs)
        if layer.name in chosen:
            base, n = layer.name, 1
            while any(f"{base}_{k}" in taken for k in _kinds(gate)):
                n += 1
                base = f"{layer.name}_{n}"
            for g in make(base):
                if g.name in taken:
                    raise ValueError(f"The gate's name {g.name!r} is already a layer's name.")
                taken.add(g.name)
                out = g(out)
        return out

    # New inputs named as the original's (clone_model would name them after its tensors).
    inputs = [
        keras.Input(batch_shape=x.shape, dtype=x.dtype, name=x._keras_history.operation.name)
        for x in model.inputs
    ]
    inputs = inputs[0] if not isinstance(model.input, (list, tuple, dict)) else inputs
    new_model = keras.models.clone_model(
        model, input_tensors=inputs, clone_function=clone, call_function=call
    )
    for old, new in pairs:
        new.set_weights(old.get_weights())
    return new_model


def _kinds(gate):
    if isinstance(gate, str):
        return [gate]
    if callable(gate):
        return []
    return list(gate)
