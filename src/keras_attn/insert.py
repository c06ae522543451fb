"""`insert_attention`: an attention gate after chosen layers of any functional Keras model.

The model is rebuilt with Keras' own graph tool, ``keras.models.clone_model``:
every layer is cloned from its config (a ``clone_function``) and, where a
chosen layer is called, a ``call_function`` puts the gate on its output. The
clones then get the original layers' weights, and the original model is left as
it was. A gate's output is its input times a mask (about 0.5 for a sigmoid gate
at the start), so the new model computes something else than the old one until
its gates learn; with ``start="identity"`` every gate is blended with its input
by a learned scalar that starts at 0 (`keras_attn.layers.BlendedGate`), and the
new model computes exactly what the old one did: the way to add gates to a
trained network and fine-tune it.
"""

from __future__ import annotations

import keras

from keras_attn import layers as gate_layers
from keras_attn._checks import did_you_mean
from keras_attn.residual import residual_branch_ends

__all__ = ["insert_attention"]

#: Names ``after`` may give instead of layers: a function ``model -> layer names``.
NAMED_SITES = {"blocks": residual_branch_ends}
#: How the inserted gates start: as they are, or as the identity (blended from 0).
STARTS = ("gate", "identity")


def _feature_map_layers(model):
    """Names of the operations of ``model`` (inputs excluded) with ``(batch, h, w, c)`` outputs."""
    names = []
    for layer in model.operations:
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
    everything = [layer.name for layer in model.operations]
    if isinstance(after, str) and after in NAMED_SITES and after not in everything:
        chosen = NAMED_SITES[after](model)
        if not chosen:
            raise ValueError(
                f"`after={after!r}` found no residual block in model {model.name!r} (no add "
                "of two feature maps of the same shape): give layer names or a function "
                f"layer -> bool. Its layers with feature maps are: {_some(maps)}."
            )
        after = chosen
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


def _blended(layer, name):
    """``layer`` blended with its input from 0, unless it starts as the identity itself."""
    if getattr(layer, "starts_as_identity", False):  # blending it would stall it (see docs)
        return layer
    return gate_layers.BlendedGate(layer, name=name)


def _gate_factory(gate, options, start):
    """``make(base_name) -> new layer``: the gates to put after one layer, in order."""
    identity = start == "identity"
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
            return [_blended(layer, f"{layer.name}_blended") if identity else layer]

        return make_called
    kinds = [gate] if isinstance(gate, str) else list(gate) if gate else []
    if not kinds or not all(isinstance(k, str) for k in kinds):
        raise ValueError(
            "`gate` must be a registered gate name, a list of them, or a function returning "
            f"a new layer; got {gate!r}. Registered: {', '.join(gate_layers.list_gates())}."
        )
    for kind in kinds:
        gate_layers.check_name(kind)
    if len(kinds) == 1:
        per_kind = {kinds[0]: options}
    elif all(k in kinds and isinstance(v, dict) for k, v in options.items()):
        per_kind = {k: options.get(k, {}) for k in kinds}
    else:
        raise ValueError(
            f"With several gates ({', '.join(kinds)}), give each one's options under its name "
            f"(e.g. conv_ae={{'filters': [8]}}); got {sorted(options)}."
        )
    for kind in kinds:
        gate_layers.get(kind, **per_kind[kind])  # bad options fail before the clone

    def make_one(base, kind):
        layer = gate_layers.get(kind, name=f"{base}_{kind}", **per_kind[kind])
        if identity and not getattr(layer, "starts_as_identity", False):
            return _blended(gate_layers.get(kind, name=kind, **per_kind[kind]), layer.name)
        return layer

    def make_named(base):
        return [make_one(base, k) for k in kinds]

    return make_named


def insert_attention(model, gate, after, start="gate", **options):
    """A copy of a functional Keras model with attention gates after the chosen layers.

    The copy has the original's weights (the original is not changed) and every
    gate's own new weights; it is not compiled. Gates are named after the layer
    they follow, ``{layer}_{gate}`` (``block_1_project_BN_eca``); a layer called
    several times gets a gate after every call.

    With ``start="identity"`` the copy computes what the original does until
    its gates learn: each gate is blended with its input by a learned scalar
    ``alpha`` that starts at 0, ``x + alpha (gate(x) - x)``
    (`keras_attn.layers.BlendedGate`, named ``{layer}_{gate}``, holding the gate
    named after its kind). Use it to add gates to a trained network. A gate
    that starts as the identity by itself (``gca``, whose last convolution
    starts at zero) is inserted as it is: blending it too would leave both its
    weights and ``alpha`` without a gradient.

    Args:
        model: a functional ``keras.Model`` (a built ``keras.Sequential`` works
            too): ``keras.applications.*``, a keras_attn model, your own.
        gate: str, a registered gate's name (``"eca"``, ``"cbam"``...; see
            ``keras_attn.layers``), a list of them (applied in order), or a
            function with no arguments returning a new ``keras.layers.Layer``.
        after: a layer name, a list of them, a function ``layer -> bool``
            called on every layer of ``model``, or ``"blocks"``: the end of every
            residual block's branch, before its add (where SE-ResNet and timm put
            a gate; `keras_attn.residual.residual_branch_ends`). The layers must
            output feature maps ``(batch, height, width, channels)``.
        start: ``"gate"`` (default: the gates as they are) or ``"identity"``
            (every gate blended from 0: the new model's outputs are the old one's).
        **options: the named gate's options, e.g. ``kernel_size=3``; with
            several gates, each one's options under its name, e.g.
            ``conv_ae={"filters": [8]}``.

    Returns:
        A new functional ``keras.Model`` with the same inputs and outputs.

    Raises:
        ValueError: ``after`` names a layer that does not exist or matches
            nothing (the message names layers that would do), picks a layer
            without a feature map, or ``gate`` is not a registered gate.

    Example:
    >>> import keras, numpy as np
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
    >>> x = np.random.default_rng(0).normal(size=(2, 8, 8, 3))
    >>> same = insert_attention(base, "se", after=["conv", "conv_2"], start="identity")
    >>> float(np.abs(np.asarray(same(x)) - np.asarray(base(x))).max())
    0.0
    >>> inputs = keras.Input((8, 8, 4))
    >>> y = keras.layers.Conv2D(4, 3, padding="same")(inputs)
    >>> y = keras.layers.BatchNormalization(name="bn")(y)
    >>> resnet_like = keras.Model(inputs, keras.layers.Add(name="add")([inputs, y]))
    >>> [layer.name for layer in insert_attention(resnet_like, "eca", after="blocks").layers][-2:]
    ['bn_eca', 'add']

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
    if start not in STARTS:
        raise ValueError(f"`start` must be one of {', '.join(map(repr, STARTS))}, got {start!r}.")
    chosen = _chosen(model, after)
    make = _gate_factory(gate, options, start)
    taken = {layer.name for layer in model.layers}
    pairs = []

    def clone(layer):
        new = layer.__class__.from_config(layer.get_config())
        if isinstance(layer, keras.layers.Layer):  # operations (a + b) have no weights
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
