"""Where a feature map's positions lie in the image, and a map resampled onto the image."""

from __future__ import annotations

import numpy as np

__all__ = ["feature_grid", "stretched_grid", "to_image"]


def _steps(layer):
    """``(kernel, stride, padding)`` per spatial axis of a convolution or pooling, else None."""
    kernel = getattr(layer, "kernel_size", None) or getattr(layer, "pool_size", None)
    strides = getattr(layer, "strides", None)
    if kernel is None or strides is None or len(kernel) != 2:
        return None
    dilation = getattr(layer, "dilation_rate", (1, 1))
    return [
        ((k - 1) * d + 1, s, layer.padding)
        for k, s, d in zip(kernel, strides, dilation, strict=True)
    ]


def feature_grid(model, name):
    """Where the positions of layer ``name``'s feature map lie in the input image.

    Follows the layers from the input to ``name``: each convolution or pooling
    moves the first position's centre by half its (dilated) kernel when
    ``"valid"`` and multiplies the spacing by its stride; layers that keep the
    map's size (activations, BatchNorm, attention) change nothing.

    Args:
        model: a functional Keras model whose layers run in ``model.layers`` order.
        name: str, a layer of ``model`` with a ``(batch, h, w, c)`` output.

    Returns:
        ``((first_row, row_step), (first_col, col_step))`` in input pixels (the
        centre of position ``(i, j)`` is ``first + index * step``), or None when
        a layer on the way changes the map's size in a way not followed here.

    Example:
    >>> import keras_attn
    >>> model = keras_attn.build("cnn", blocks=[8, 16], dense_units=16)
    >>> feature_grid(model, "block1_conv_b"), feature_grid(model, "block2_norm_b")
    (((1.0, 1.0), (1.0, 1.0)), ((3.5, 2.0), (3.5, 2.0)))
    """
    grid = [[0.0, 1.0], [0.0, 1.0]]
    size = list(model.input_shape[1:3])
    for layer in model.layers[1:]:
        out = layer.output.shape
        steps = _steps(layer) if len(out) == 4 else None
        if steps is not None:
            for axis, (kernel, stride, padding) in enumerate(steps):
                if padding == "valid":
                    grid[axis][0] += (kernel - 1) / 2 * grid[axis][1]
                elif kernel % 2 == 0 or stride != 1:  # "same" with an off-centre window
                    return None
                grid[axis][1] *= stride
        elif len(out) != 4 or list(out[1:3]) != size:
            return None  # a layer changed the map's size in a way not followed
        size = list(out[1:3])
        if layer.name == name:
            return tuple(tuple(float(v) for v in axis) for axis in grid)
    return None


def stretched_grid(map_shape, size):
    """The grid of a ``map_shape`` map spread evenly over an image of ``size`` (as a resize).

    Example:
    >>> stretched_grid((2, 16), (4, 32))
    ((0.5, 2.0), (0.5, 2.0))
    """
    return tuple(((n / count - 1) / 2, n / count) for count, n in zip(map_shape, size))


def to_image(values, grid, size):
    """A feature map ``(h, w)`` resampled (bilinear) onto the image's pixel centres.

    Args:
        values: array ``(h, w)``.
        grid: as `feature_grid`, or None: the map is stretched over the image.
        size: ``(height, width)`` of the image.

    Returns:
        float32 array ``(height, width)``; beyond the outermost positions, their values.

    Example:
    >>> to_image(np.array([[0.0, 1.0]]), ((0.0, 1.0), (1.0, 2.0)), (1, 5)).tolist()
    [[0.0, 0.0, 0.5, 1.0, 1.0]]
    """
    values = np.asarray(values, dtype="float64")
    grid = grid if grid is not None else stretched_grid(values.shape, size)
    out = values
    for axis, n in enumerate(size):
        count = values.shape[axis]
        first, step = grid[axis]
        # Each pixel centre in map positions, held at the outermost ones.
        where = np.clip((np.arange(n) - first) / step, 0, count - 1)
        below = np.floor(where).astype(int)
        above = np.minimum(below + 1, count - 1)
        shape = [1, 1]
        shape[axis] = n
        frac = (where - below).reshape(shape)
        out = np.take(out, below, axis=axis) * (1 - frac) + np.take(out, above, axis=axis) * frac
    return out.astype("float32")
