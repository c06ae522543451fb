"""Multiply-accumulates (MACs) of a model's forward pass, counted from layer shapes.

One multiply-accumulate is one ``a * b + c``; a FLOP count is about twice the
MAC count. Only the layers that do the arithmetic are counted: convolutions
(``Conv1D``/``Conv2D``/``Conv3D``, depthwise and separable ones, transposed
ones) and ``Dense`` (on inputs of any rank, as in the linear autoencoder gate,
which applies its dense layers along the width axis of a rank-4 tensor).
Element-wise work (activations, BatchNorm, pooling, the gates' ``input x mask``)
is not counted; `mac_breakdown` lists the weighted layers it skipped.

How shapes are found: the model is called once, eagerly, on a batch of one
zero image while every ``keras.layers.Layer.__call__`` is recorded, so layers
nested inside other layers (the attention blocks' own convolutions and dense
layers) and layers called several times (CBAM's shared channel MLP runs twice,
on the average- and the max-pooled vector) are all counted, with the shapes
they really see.

Conventions:

- Convolution: ``output positions x prod(kernel shape)``, that is
  ``H_out * W_out * k_h * k_w * C_in / groups * C_out`` for ``Conv2D``.
- Transposed convolution: ``input positions x prod(kernel shape)``
  (``H_in * W_in * k_h * k_w * C_out * C_in``): every input value is multiplied
  by the whole kernel, as the direct implementation does; positions cropped
  away afterwards (``padding="same"``, ``Cropping2D``) are still counted.
- Dense: ``prod(input shape without batch and last axis) x units x fan-in``.

Example:
>>> import keras_attn
>>> from keras_attn.flops import count_macs
>>> count_macs(keras_attn.build("cnn"))
78820352
"""

import contextlib
import math
import threading

import keras
import numpy as np

__all__ = ["count_macs", "layer_macs", "mac_breakdown", "mac_summary"]

_LOCK = threading.Lock()


def _shape(x):
    shape = getattr(x, "shape", None)
    return None if shape is None else tuple(int(d) if d is not None else None for d in shape)


def _first_tensor(args):
    for a in args:
        if hasattr(a, "shape"):
            return a
        if isinstance(a, (list, tuple)):
            found = _first_tensor(a)
            if found is not None:
                return found
    return None


def _spatial(shape, data_format):
    """The spatial axes of a ``(batch, ..., channels)`` or channels-first shape."""
    return shape[2:] if data_format == "channels_first" else shape[1:-1]


def layer_macs(layer, input_shape, output_shape):
    """MACs of one call of ``layer`` on a batch of one, or None if it is not counted.

    Args:
        layer: a built ``keras.layers.Layer``.
        input_shape: tuple, the shape of its (first) input, batch axis included.
        output_shape: tuple, the shape of its output, batch axis included.

    Returns:
        int (MACs for the whole batch given; use a batch of one for per-image
        figures), or None for layers that do no counted arithmetic.

    Example:
    >>> import keras
    >>> conv = keras.layers.Conv2D(8, 3)
    >>> conv.build((None, 10, 10, 4))
    >>> layer_macs(conv, (1, 10, 10, 4), (1, 8, 8, 8))  # 8*8 positions * 3*3*4*8
    18432
    """
    layers = keras.layers
    if isinstance(layer, layers.SeparableConv1D | layers.SeparableConv2D):
        positions = math.prod(_spatial(output_shape, layer.data_format))
        depthwise = math.prod(layer.depthwise_kernel.shape)
        pointwise = math.prod(layer.pointwise_kernel.shape)
        return int(output_shape[0] * positions * (depthwise + pointwise))
    if isinstance(layer, layers.Conv1DTranspose | layers.Conv2DTranspose | layers.Conv3DTranspose):
        positions = math.prod(_spatial(input_shape, layer.data_format))
        return int(input_shape[0] * positions * math.prod(layer.kernel.shape))
    if isinstance(
        layer,
        layers.Conv1D
        | layers.Conv2D
        | layers.Conv3D
        | layers.DepthwiseConv1D
        | layers.DepthwiseConv2D,
    ):
        kernel = layer.depthwise_kernel if hasattr(layer, "depthwise_kernel") else layer.kernel
        positions = math.prod(_spatial(output_shape, layer.data_format))
        return int(output_shape[0] * positions * math.prod(kernel.shape))
    if isinstance(layer, layers.Dense):
        rows = math.prod(input_shape[:-1])
        return int(rows * math.prod(layer.kernel.shape))
    return None


@contextlib.contextmanager
def _record_calls(records):
    """Record ``(path, layer, input_shape, output_shape)`` of every layer call inside."""
    base = keras.layers.Layer
    original = base.__call__
    stack = []

    def recording_call(self, *args, **kwargs):
        stack.append(self.name)
        try:
            outputs = original(self, *args, **kwargs)
        finally:
            path = "/".join(stack)
            stack.pop()
        x = _first_tensor(args) if args else _first_tensor(list(kwargs.values()))
        y = _first_tensor([outputs])
        records.append((path, self, _shape(x), _shape(y)))
        return outputs

    with _LOCK:
        base.__call__ = recording_call
        try:
            yield
        finally:
            base.__call__ = original


def _zeros_like_inputs(model):
    inputs = model.inputs
    if not inputs:
        raise ValueError(
            f"Model {model.name!r} has no known inputs: build or call it first "
            "(keras_attn models are functional and always have them)."
        )
    arrays = []
    for t in inputs:
        shape = tuple(t.shape)
        if any(d is None for d in shape[1:]):
            raise ValueError(
                f"Model {model.name!r} has an input of shape {shape} with an unknown "
                "non-batch dimension: MACs depend on it. Build it with a fixed input_shape."
            )
        arrays.append(np.zeros((1, *shape[1:]), dtype=t.dtype or "float32"))
    return arrays[0] if len(arrays) == 1 else arrays


def mac_breakdown(model):
    """Every counted layer call of one forward pass on one image, in call order.

    Args:
        model: a built functional ``keras.Model`` with fixed input shapes.

    Returns:
        dict with ``"layers"``: a list of ``{"path", "class", "input_shape",
        "output_shape", "macs"}`` (``path`` is ``top/inner/...`` layer names,
        shapes include the batch axis of 1), and ``"skipped"``: the sorted
        class names of called layers that have weights but are not counted
        (BatchNormalization, for instance), so nothing is dropped silently.

    Example:
    >>> import keras_attn
    >>> rows = mac_breakdown(keras_attn.build("cnn_eca"))["layers"]
    >>> [r["path"] for r in rows][:3]
    ['block1_conv_a', 'site1_eca/conv', 'block1_conv_b']
    """
    records = []
    x = _zeros_like_inputs(model)
    with _record_calls(records):
        model(x, training=False)
    rows, skipped = [], set()
    for path, layer, in_shape, out_shape in records:
        if layer is model or in_shape is None or out_shape is None:
            continue
        macs = layer_macs(layer, in_shape, out_shape)
        if macs is None:
            has_own_weights = bool(layer.weights) and not getattr(layer, "_layers", None)
            if has_own_weights and not isinstance(layer, keras.Model):
                skipped.add(type(layer).__name__)
            continue
        # Inner paths start with the model's own name when the model is called directly.
        parts = path.split("/")
        if parts[0] == model.name:
            parts = parts[1:]
        rows.append(
            {
                "path": "/".join(parts),
                "class": type(layer).__name__,
                "input_shape": list(in_shape),
                "output_shape": list(out_shape),
                "macs": macs,
            }
        )
    return {"layers": rows, "skipped": sorted(skipped)}


def count_macs(model):
    """Forward-pass multiply-accumulates per image of ``model``.

    Args:
        model: a built functional ``keras.Model`` with fixed input shapes (every
            keras_attn model is one).

    Returns:
        int, MACs for one image (one example per input for multi-input models).

    Example:
    >>> import keras_attn
    >>> count_macs(keras_attn.build("cnn_linear_ae")) > 2 * count_macs(keras_attn.build("cnn"))
    True
    """
    return sum(row["macs"] for row in mac_breakdown(model)["layers"])


def mac_summary(model, baseline=None):
    """Total MACs per image, split into attention and the rest, and the ratio to a baseline.

    A layer's MACs count as attention when its top-level layer is one of
    `keras_attn.layers.registry.GATES` (``site3_conv_ae/encode_0`` is
    attention, ``block2_conv_a`` is not).

    Args:
        model: a built functional ``keras.Model``.
        baseline: optional int, the MACs per image of a reference model (e.g.
            ``count_macs(build("cnn"))``); adds ``"ratio"`` = total / baseline.

    Returns:
        dict: ``{"macs", "attention_macs", "backbone_macs", "ratio"?}``.

    Example:
    >>> import keras_attn
    >>> s = mac_summary(keras_attn.build("cnn_conv_ae"), baseline=78820352)
    >>> round(s["ratio"], 2)
    1.17
    """
    from keras_attn.layers.registry import GATES

    attention_names = {
        layer.name
        for layer in model._flatten_layers(include_self=False, recursive=True)
        if isinstance(layer, tuple(GATES.values()))
    }
    total = attention = 0
    for row in mac_breakdown(model)["layers"]:
        total += row["macs"]
        if any(part in attention_names for part in row["path"].split("/")):
            attention += row["macs"]
    summary = {"macs": total, "attention_macs": attention, "backbone_macs": total - attention}
    if baseline is not None:
        if not baseline > 0:
            raise ValueError(f"`baseline` must be a positive MAC count, got {baseline!r}.")
        summary["ratio"] = total / baseline
    return summary
