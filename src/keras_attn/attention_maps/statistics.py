"""How much each attention block's mask varies over a set of images, and a text table of it."""

from __future__ import annotations

import keras
import numpy as np

from keras_attn._checks import check_positive_int
from keras_attn.attention_maps.sites import checked_attention_layers, measured_mask, site_inputs

__all__ = ["format_mask_statistics", "mask_statistics"]


def mask_statistics(model, images, batch_size=64):
    """How much each attention block's mask varies, over a set of images.

    A gate whose mask is nearly constant scales its input uniformly, which the
    BatchNorm after it undoes: it then does no attention. These figures tell
    that apart from a mask with structure, where a stretched colour scale
    (`plot_attention_maps`) would show a pattern either way.

    Args:
        model: a Keras model with keras_attn attention layers (see `attention_maps`).
        images: array ``(N, height, width, channels)`` of raw pixels 0..255 at
            the model's input size.
        batch_size: int, default 64. Images per forward pass.

    Returns:
        list of dicts, in network order, one per attention layer: ``site``,
        ``kind``, ``name``, ``images`` (N), and over every image, position and
        channel of the mask (broadcast to the input's shape): ``mean``, ``std``,
        ``min``, ``max``; ``spatial_std``, the standard deviation over positions
        of the channel-mean mask, averaged over images (0 for channel-only
        gates); ``channel_std``, the standard deviation over channels of the
        position-mean mask, averaged over images (0 for a mask the same on every
        channel).

    Raises:
        ValueError: as `attention_maps`, or ``images`` not a batch of the
            model's input shape, or ``batch_size`` not a positive int.

    Example:
    >>> import numpy as np
    >>> import keras_attn
        >>> model = keras_attn.build("cnn_eca", blocks=[8, 16], dense_units=16)
    >>> rows = mask_statistics(model, np.zeros((3, 32, 32, 3), "uint8"))
    >>> [(r["site"], r["kind"], r["images"], r["spatial_std"]) for r in rows][:2]
    [(1, 'eca', 3, 0.0), (2, 'eca', 3, 0.0)]
    """
    layers = checked_attention_layers(model)
    images = np.asarray(images)
    expected = tuple(model.input_shape[1:])
    if images.ndim != len(expected) + 1 or tuple(images.shape[1:]) != expected or not len(images):
        raise ValueError(
            f"`images` must be a non-empty batch (N, {', '.join(map(str, expected))}) for "
            f"model {model.name!r}, got shape {images.shape}."
        )
    check_positive_int("batch_size", batch_size)
    inputs_of = site_inputs(model, layers)
    totals = [
        {"sum": 0.0, "sq": 0.0, "min": np.inf, "max": -np.inf, "count": 0, "sp": 0.0, "ch": 0.0}
        for _ in layers
    ]
    for start in range(0, len(images), batch_size):
        batch = images[start : start + batch_size].astype("float32")
        for t, (_, _, layer), x in zip(totals, layers, inputs_of(batch), strict=True):
            gate = keras.ops.convert_to_numpy(measured_mask(layer, x)).astype("float64")
            full = np.broadcast_to(gate, tuple(x.shape))
            t["sum"] += full.sum()
            t["sq"] += np.square(full).sum()
            t["count"] += full.size
            t["min"] = min(t["min"], float(gate.min()))
            t["max"] = max(t["max"], float(gate.max()))
            t["sp"] += full.mean(axis=-1).std(axis=(1, 2)).sum()
            t["ch"] += full.mean(axis=(1, 2)).std(axis=-1).sum()
    rows = []
    for t, (site, kind, layer) in zip(totals, layers, strict=True):
        mean = t["sum"] / t["count"]
        rows.append(
            {
                "site": site,
                "kind": kind,
                "name": layer.name,
                "images": len(images),
                "mean": float(mean),
                "std": float(np.sqrt(max(t["sq"] / t["count"] - mean**2, 0.0))),
                "min": t["min"],
                "max": t["max"],
                "spatial_std": float(t["sp"] / len(images)),
                "channel_std": float(t["ch"] / len(images)),
            }
        )
    return rows


def format_mask_statistics(rows):
    """`mask_statistics` rows as a text table.

    Example:
    >>> row = {"site": 1, "kind": "conv_ae", "images": 8, "mean": 0.5, "std": 0.002,
    ...        "min": 0.48, "max": 0.51, "spatial_std": 0.0001, "channel_std": 0.0003}
    >>> print(format_mask_statistics([row]))
    site  block      images    mean     std     min     max  spatial std  channel std
       1  conv_ae         8  0.5000  0.0020  0.4800  0.5100       0.0001       0.0003
    """
    lines = [
        f"{'site':>4}  {'block':<9} {'images':>6} {'mean':>7} {'std':>7} {'min':>7} {'max':>7}"
        f"  {'spatial std':>11}  {'channel std':>11}"
    ]
    for r in rows:
        lines.append(
            f"{r['site']:>4}  {r['kind']:<9} {r['images']:>6} {r['mean']:7.4f} {r['std']:7.4f} "
            f"{r['min']:7.4f} {r['max']:7.4f}  {r['spatial_std']:11.4f}  {r['channel_std']:11.4f}"
        )
    return "\n".join(lines)
