"""Residual blocks of a functional Keras model: where each residual branch ends, before its add.

A residual block adds its input (or a projection of it, the shortcut) to the
output of a branch of layers. The branch is the addend that lies further from
the model's inputs; its last layer is where SE-ResNet, CBAM and timm's ResNets
put an attention gate (after the branch's last normalisation, before the add).
"""

from __future__ import annotations

__all__ = ["residual_branch_ends"]


def _producer(tensor):
    operation, node_index, _ = tensor._keras_history
    return operation, operation._inbound_nodes[node_index]


def _levels(tensors):
    """``{id(tensor): operations on its longest path from an input}`` for ``tensors``' history."""
    levels, stack = {}, list(tensors)
    while stack:
        tensor = stack[-1]
        if id(tensor) in levels:
            stack.pop()
            continue
        _, node = _producer(tensor)
        parents = [] if node.is_input else list(node.input_tensors)
        missing = [p for p in parents if id(p) not in levels]
        if missing:
            stack.extend(missing)
            continue
        levels[id(tensor)] = 1 + max((levels[id(p)] for p in parents), default=-1)
        stack.pop()
    return levels


def _is_add(operation):
    # keras.layers.Add, and the operation `a + b` of two tensors records (keras.ops.add).
    return type(operation).__name__ == "Add"


def residual_branch_ends(model):
    """The last layer of every residual branch of ``model``, in network order.

    A residual add is an addition of two feature maps ``(batch, H, W, C)`` of
    the same shape (a ``keras.layers.Add`` or ``a + b``); its branch is the
    addend with the longer path from the model's inputs, the other being the
    shortcut. ``keras_attn.insert_attention(model, gate, after="blocks")`` puts a
    gate after each of these layers.

    Args:
        model: a functional ``keras.Model`` (``keras.applications.ResNet50``,
            ``MobileNetV3Small``, ``EfficientNetV2B0``, ``ConvNeXtTiny``, a
            keras_attn ResNet...).

    Returns:
        list of str: names of the operations (layers) that end the branches;
        empty for a model without residual adds.

    Example:
    >>> import keras
    >>> inputs = keras.Input((8, 8, 4))
    >>> x = keras.layers.Conv2D(4, 3, padding="same", name="conv")(inputs)
    >>> x = keras.layers.BatchNormalization(name="bn")(x)
    >>> block = keras.layers.Add(name="add")([inputs, x])
    >>> residual_branch_ends(keras.Model(inputs, block))
    ['bn']
    """
    adds = []
    for operation in model.operations:
        if not _is_add(operation):
            continue
        for node in operation._inbound_nodes:
            addends = list(node.input_tensors)
            shapes = {tuple(t.shape) for t in addends}
            if len(addends) == 2 and len(shapes) == 1 and len(next(iter(shapes))) == 4:
                adds.append(addends)
    levels = _levels([t for addends in adds for t in addends])
    ends = []
    for shortcut, branch in (sorted(a, key=lambda t: levels[id(t)]) for a in adds):
        if levels[id(branch)] > levels[id(shortcut)]:
            name = _producer(branch)[0].name
            if name not in ends:
                ends.append(name)
    return ends
