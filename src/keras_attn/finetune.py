"""Fine-tuning gates inserted into a trained network in two stages (Keras' transfer learning).

Stage 1 trains the attention gates and the head with everything else frozen;
stage 2 unfreezes the rest with a lower learning rate. BatchNormalization layers
outside the gates stay in inference mode throughout (a frozen Keras
``BatchNormalization`` runs on its moving statistics), as Keras' guide
"Transfer learning & fine-tuning" keeps them while fine-tuning, so that a few
small batches do not overwrite statistics learned on the original data.
"""

from __future__ import annotations

import keras

__all__ = ["fine_tune", "gate_layers", "head_layers", "set_stage"]

STAGES = ("gates", "all")


def gate_layers(model):
    """The attention gates of ``model``: registered gates and blended ones, in network order.

    Example:
    >>> import keras_attn
    >>> [layer.name for layer in gate_layers(keras_attn.build("cnn_eca", blocks=[4]))]
    ['site1_eca', 'site2_eca']
    """
    from keras_attn.layers import BlendedGate
    from keras_attn.layers.registry import GATES

    classes = tuple(GATES.values()) + (BlendedGate,)
    return [layer for layer in model.layers if isinstance(layer, classes)]


def _rank(layer):
    try:
        return len(layer.output.shape)
    except (AttributeError, ValueError):  # called several times
        return len(layer._inbound_nodes[0].outputs[0].shape)


def head_layers(model):
    """The head of ``model``: layers with weights whose output is not a feature map.

    After the last feature map ``(batch, H, W, C)`` comes the classifier (a
    ``Dense`` after pooling): those layers are the head.

    Example:
    >>> import keras_attn
    >>> [layer.name for layer in head_layers(keras_attn.build("resnet20"))]
    ['logits']
    """
    return [layer for layer in model.layers if layer.weights and _rank(layer) != 4]


def _names(model, layers, what):
    if layers is None:
        return None
    names = [layers] if isinstance(layers, str) else [getattr(x, "name", x) for x in layers]
    known = {layer.name for layer in model.layers}
    unknown = [n for n in names if n not in known]
    if unknown:
        raise ValueError(f"`{what}` names no layer of model {model.name!r}: {unknown}.")
    return set(names)


def set_stage(model, stage, head=None):
    """Set which layers of ``model`` train in a fine-tuning stage (recompile it afterwards).

    Args:
        model: a functional ``keras.Model`` with attention gates (e.g. from
            ``keras_attn.insert_attention(..., start="identity")``).
        stage: ``"gates"`` (stage 1: the gates and the head train, the rest is
            frozen) or ``"all"`` (stage 2: everything trains except the
            BatchNormalization layers outside the gates, kept in inference mode).
        head: layer names (or layers) of the head; default `head_layers`.

    Returns:
        The names of the layers that train.

    Example:
    >>> import keras_attn
    >>> model = keras_attn.build("resnet20_eca", depth=8, widths=[4, 4, 4])
    >>> set_stage(model, "gates")
    ['site1_eca', 'site2_eca', 'site3_eca', 'logits']
    >>> model.get_layer("block1_bn_a").trainable
    False
    """
    if stage not in STAGES:
        raise ValueError(f"`stage` must be one of {STAGES}, got {stage!r}.")
    gates = {layer.name for layer in gate_layers(model)}
    if not gates:
        raise ValueError(
            f"Model {model.name!r} has no attention gates to fine-tune: insert some first "
            "(keras_attn.insert_attention(model, 'eca', after='blocks', start='identity'))."
        )
    head = _names(model, head, "head")
    head = head if head is not None else {layer.name for layer in head_layers(model)}
    model.trainable = True
    training = []
    for layer in model.layers:
        if stage == "gates":
            layer.trainable = layer.name in gates or layer.name in head
        else:
            layer.trainable = not isinstance(layer, keras.layers.BatchNormalization)
        if layer.trainable and layer.weights:
            training.append(layer.name)
    return training


def fine_tune(
    model,
    x,
    y=None,
    *,
    epochs=(1, 1),
    learning_rates=(1e-3, 1e-5),
    optimizer="adam",
    loss="sparse_categorical_crossentropy",
    metrics=("accuracy",),
    head=None,
    compile_kwargs=None,
    **fit_kwargs,
):
    """Fine-tune ``model`` in two stages: the gates and the head, then everything at a lower rate.

    Each stage sets the layers that train (`set_stage`), compiles with a new
    optimizer at its learning rate, and calls ``model.fit``. A stage with 0
    epochs is skipped.

    Args:
        model: a functional ``keras.Model`` with attention gates.
        x, y: training data, as ``model.fit`` takes them.
        epochs: ``(stage 1, stage 2)`` epochs, default ``(1, 1)``.
        learning_rates: ``(stage 1, stage 2)``, default ``(1e-3, 1e-5)`` (the guide's 1e-5).
        optimizer: str, a Keras optimizer name, default ``"adam"``.
        loss, metrics: passed to ``model.compile``.
        head: the head's layer names, default `head_layers`.
        compile_kwargs: dict, more arguments of ``model.compile`` (e.g.
            ``{"jit_compile": False}``), default None.
        **fit_kwargs: passed to both ``model.fit`` calls (``batch_size``,
            ``validation_data``, ``callbacks``...).

    Returns:
        ``[history of stage 1, history of stage 2]`` (None for a skipped stage).

    Example:
    >>> import numpy as np, keras_attn
    >>> base = keras_attn.build("resnet20", depth=8, widths=[4, 4, 4], input_shape=(8, 8, 3))
    >>> model = keras_attn.insert_attention(base, "eca", after="blocks", start="identity")
    >>> x = np.random.default_rng(0).integers(0, 256, (8, 8, 8, 3)).astype("float32")
    >>> stage1, stage2 = fine_tune(model, x, np.arange(8) % 10, batch_size=4, verbose=0,
    ...                            compile_kwargs={"run_eagerly": True})
    >>> len(stage1.history["loss"]), len(stage2.history["loss"])
    (1, 1)
    """
    if len(epochs) != 2 or len(learning_rates) != 2:
        raise ValueError(
            f"`epochs` and `learning_rates` take one value per stage (two each), got "
            f"{epochs!r} and {learning_rates!r}."
        )
    histories = []
    for stage, n, rate in zip(STAGES, epochs, learning_rates):
        if not n:
            histories.append(None)
            continue
        set_stage(model, stage, head=head)
        config = {"learning_rate": rate, "name": f"{optimizer}_{stage}"}
        opt = keras.optimizers.get({"class_name": optimizer, "config": config})
        model.compile(optimizer=opt, loss=loss, metrics=list(metrics), **(compile_kwargs or {}))
        histories.append(model.fit(x, y, epochs=n, **fit_kwargs))
    return histories
