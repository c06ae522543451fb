"""Where does each attention block look? Its mask for one image, as numbers and as a PNG.

Every keras_attn attention layer has ``gate(inputs)``, the multiplicative mask
it applies to its input. For an image, `attention_maps` runs the model up to
each attention layer's input, asks the layer for its mask (inference mode),
averages it over channels and upsamples it (bilinear) to the image size.
`plot_attention_maps` draws a grid: one row per site, the image in the first
column, then each block's mask at that site (titles ``site 1 eca``...), each
stretched over its own range (printed under it) or, with ``scale="fixed"``, all
on one 0..1 colour scale.

Reading the maps: channel-only blocks (ECA, CBAM's channel gate) weight whole
channels, so their mean over channels is the same everywhere (a flat panel,
marked "channel-only"); the spatial blocks (CBAM, its spatial gate, the
autoencoder gates) vary over the image. A site's feature map is smaller than
the image (valid convolutions and pooling), so the upsampled mask is aligned
with the image only approximately near the borders.
"""

from __future__ import annotations

import inspect
from pathlib import Path

import keras
import numpy as np

from keras_attn.layers._checks import check_positive_int

__all__ = [
    "CELL_INCHES",
    "SCALES",
    "attention_layers",
    "attention_maps",
    "figure_inches",
    "format_mask_statistics",
    "mask_statistics",
    "plot_attention_maps",
]

#: Size of one panel of the grid, in inches (the PNG is ``figure_inches(...) * dpi`` pixels).
CELL_INCHES = 2.2
_COLORBAR_INCHES = 0.9
_TITLE_INCHES = 0.7
_LABEL_INCHES = 0.4
#: Colour scales of `plot_attention_maps`.
SCALES = ("panel", "fixed")


def attention_layers(model):
    """The attention blocks of a model as ``[(site, kind, layer)]``, in network order.

    Example:
    >>> import keras_attn
    >>> [(site, kind) for site, kind, _ in attention_layers(keras_attn.build("cnn_eca"))]
    [(1, 'eca'), (2, 'eca'), (3, 'eca'), (4, 'eca')]
    """
    from keras_attn.layers import ATTENTION_LAYERS

    kinds = {cls: kind for kind, cls in ATTENTION_LAYERS.items()}
    found = []
    for layer in getattr(model, "layers", []):
        kind = kinds.get(type(layer))
        if kind is None:
            continue
        prefix, _, rest = layer.name.partition("_")
        site = int(prefix[4:]) if prefix.startswith("site") and prefix[4:].isdigit() else None
        found.append((site, rest or kind, layer))
    # Layers not named site{N}_... (a hand-built model): number them in order.
    if any(site is None for site, _, _ in found):
        found = [(i, kind, layer) for i, (_, kind, layer) in enumerate(found, start=1)]
    return found


def _no_attention_error(model):
    from keras_attn.zoo import VARIANTS

    with_attention = [n for n, v in VARIANTS.items() if v["config"].get("attention")]
    return ValueError(
        f"model {model.name!r} has no attention blocks; attention maps need a variant with "
        f"attention, e.g. {', '.join(with_attention)} (keras_attn.list_models())."
    )


def _checked_layers(model):
    """`attention_layers` of a Keras model, or a clear error."""
    if not isinstance(model, keras.Model):
        raise ValueError(
            f"Attention maps need the Keras model (load the export's .keras file, e.g. "
            f"keras_attn.load(folder, format='keras')), got {type(model).__name__}: a "
            "SavedModel has no layers to inspect."
        )
    layers = attention_layers(model)
    if not layers:
        raise _no_attention_error(model)
    return layers


def _site_inputs(model, layers):
    """A function from a batch of images to the list of inputs of the layers in ``layers``."""
    probe = keras.Model(model.inputs[0], [layer.input for _, _, layer in layers])

    def inputs(images):
        out = probe(images, training=False)
        return list(out) if isinstance(out, (list, tuple)) else [out]

    return inputs


def _gate(layer, x):
    if "training" in inspect.signature(layer.gate).parameters:
        return layer.gate(x, training=False)
    return layer.gate(x)


def _upsample(mask, size):
    from PIL import Image

    height, width = size
    if mask.shape == (height, width):
        return mask.astype("float32")
    img = Image.fromarray(mask.astype("float32"), mode="F")
    return np.asarray(img.resize((width, height), Image.Resampling.BILINEAR), dtype="float32")


def attention_maps(model, image):
    """Each attention block's mask for one image, averaged over channels and upsampled.

    Args:
        model: a Keras model with keras_attn attention layers (a
            `keras_attn.AttentionCNN`, e.g. from `keras_attn.load`; a SavedModel
            has no layers to inspect).
        image: array ``(height, width, channels)`` of raw pixels 0..255 (uint8 or
            float) at the model's input size (see `keras_attn.export.load_images`).

    Returns:
        list of dicts, in network order, one per attention layer: ``site`` (int),
        ``kind`` (e.g. ``"eca"``), ``name`` (the layer name), ``mask`` (float32
        ``(height, width)`` in [0, 1]), ``mask_shape`` (the gate's own shape,
        without the batch axis) and ``channel_only`` (True when the mask does not
        vary over positions).

    Raises:
        ValueError: the model has no attention blocks, is not a Keras model, or
            the image does not have the model's input shape.

    Example:
    >>> import numpy as np
    >>> import keras_attn
    >>> from keras_attn.attention_maps import attention_maps
    >>> model = keras_attn.build("cnn_conv_ae", blocks=[8, 16], dense_units=16)
    >>> maps = attention_maps(model, np.zeros((32, 32, 3), "uint8"))
    >>> [(m["site"], m["kind"], m["mask"].shape) for m in maps][:2]
    [(1, 'conv_ae', (32, 32)), (2, 'conv_ae', (32, 32))]
    """
    layers = _checked_layers(model)
    image = np.asarray(image)
    expected = tuple(model.input_shape[1:])
    if image.shape != expected:
        raise ValueError(
            f"The image has shape {image.shape} but model {model.name!r} takes {expected}; "
            "fit it first (keras_attn.export.load_images(..., resize='crop'))."
        )
    inputs = _site_inputs(model, layers)(image[None].astype("float32"))
    maps = []
    for (site, kind, layer), x in zip(layers, inputs, strict=True):
        gate = keras.ops.convert_to_numpy(_gate(layer, x))[0]  # (h, w, c), (1, 1, c), (h, w, 1)
        mean = gate.mean(axis=-1)
        maps.append(
            {
                "site": site,
                "kind": kind,
                "name": layer.name,
                "mask": np.clip(_upsample(mean, expected[:2]), 0.0, 1.0),
                "mask_shape": tuple(int(d) for d in gate.shape),
                "channel_only": gate.shape[0] == 1 and gate.shape[1] == 1,
            }
        )
    return maps


def figure_inches(rows, cols):
    """``(width, height)`` in inches of a grid of ``rows`` x ``cols`` panels.

    Example:
    >>> figure_inches(4, 3)
    (7.5, 11.1)
    """
    return (
        round(cols * CELL_INCHES + _COLORBAR_INCHES, 6),
        round(rows * (CELL_INCHES + _LABEL_INCHES) + _TITLE_INCHES, 6),
    )


def plot_attention_maps(model, image, out_path, title=None, scale="panel", dpi=100):
    """Write a PNG grid of an image and every attention block's mask on it.

    One row per site; the first column is the image, then each block at that
    site, in the order they apply (titles ``site 1 eca``, ``site 1 conv_ae``...,
    with the mask's range under each).

    Args:
        model: a Keras model with keras_attn attention layers (see `attention_maps`).
        image: uint8 array ``(height, width, channels)`` at the model's input size.
        out_path: str or Path of the PNG (parent folders are created).
        title: str or None, default None (the model's name).
        scale: str, default ``"panel"``. ``"panel"`` stretches each mask's colours
            over its own range (shown under it), so the pattern is visible even
            when a mask varies little; ``"fixed"`` draws every mask on one 0..1
            scale with a colour bar, to compare strengths across blocks.
        dpi: int, default 100. The PNG is ``figure_inches(rows, cols)`` x ``dpi`` pixels.

    Returns:
        dict: ``path`` (Path), ``rows``, ``cols`` and ``maps`` (as `attention_maps`).

    Raises:
        ValueError: as `attention_maps` (e.g. model ``cnn``, which has no
            attention), or an unknown ``scale``.

    Example:
    >>> import numpy as np
    >>> import keras_attn
    >>> from keras_attn.attention_maps import plot_attention_maps
    >>> model = keras_attn.build("cnn_eca", blocks=[8, 16], dense_units=16)
    >>> plot_attention_maps(model, np.zeros((32, 32, 3), "uint8"), "maps.png")  # doctest: +SKIP
    """
    if scale not in SCALES:
        raise ValueError(f"`scale` must be one of {SCALES}, got {scale!r}.")
    import matplotlib

    matplotlib.use("Agg", force=False)
    import matplotlib.pyplot as plt

    maps = attention_maps(model, image)
    sites = sorted({m["site"] for m in maps})
    by_site = {s: [m for m in maps if m["site"] == s] for s in sites}
    rows, cols = len(sites), 1 + max(len(v) for v in by_site.values())
    width, height = figure_inches(rows, cols)
    fig = plt.figure(figsize=(width, height), dpi=dpi)
    grid = fig.add_gridspec(
        rows,
        cols,
        left=0.2 / width,
        right=(width - _COLORBAR_INCHES) / width,
        bottom=_LABEL_INCHES / height,
        top=(height - _TITLE_INCHES) / height,
        wspace=0.15,
        hspace=_LABEL_INCHES / CELL_INCHES,
    )
    image = np.asarray(image)
    shown = image[..., 0] if image.shape[-1] == 1 else image
    picture = None
    for r, site in enumerate(sites):
        ax = fig.add_subplot(grid[r, 0])
        ax.imshow(shown.astype("uint8"), cmap="gray" if shown.ndim == 2 else None)
        ax.set_title("input", fontsize=9)
        ax.set_axis_off()
        for c, m in enumerate(by_site[site], start=1):
            ax = fig.add_subplot(grid[r, c])
            lo, hi = float(m["mask"].min()), float(m["mask"].max())
            if scale == "fixed":
                vmin, vmax = 0.0, 1.0
            else:  # a flat mask gets the middle colour
                vmin, vmax = (lo, hi) if hi - lo > 1e-6 else (lo - 0.5, lo + 0.5)
            picture = ax.imshow(m["mask"], cmap="viridis", vmin=vmin, vmax=vmax)
            ax.set_title(f"site {site} {m['kind']}", fontsize=9)
            note = ", channel-only" if m["channel_only"] else ""
            ax.text(
                0.5,
                -0.04,
                f"range [{lo:.4f}, {hi:.4f}]{note}",
                transform=ax.transAxes,
                ha="center",
                va="top",
                fontsize=7,
            )
            ax.set_xticks([])
            ax.set_yticks([])
    if scale == "fixed":
        cax = fig.add_axes(
            [
                (width - _COLORBAR_INCHES + 0.2) / width,
                _LABEL_INCHES / height,
                0.15 / width,
                (height - _TITLE_INCHES - _LABEL_INCHES) / height,
            ]
        )
        fig.colorbar(picture, cax=cax, label="mask (mean over channels)")
        subtitle = "mask = mean over channels, one 0..1 colour scale"
    else:
        subtitle = "mask = mean over channels; colours stretched per panel (range below)"
    fig.suptitle(
        f"{title if title is not None else model.name + ': attention masks'}\n{subtitle}",
        fontsize=10,
        y=1 - 0.08 / height,
        va="top",
    )
    out_path = Path(out_path)
    out_path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(out_path, dpi=dpi)
    plt.close(fig)
    return {"path": out_path, "rows": rows, "cols": cols, "maps": maps}


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
    >>> from keras_attn.attention_maps import mask_statistics
    >>> model = keras_attn.build("cnn_eca", blocks=[8, 16], dense_units=16)
    >>> rows = mask_statistics(model, np.zeros((3, 32, 32, 3), "uint8"))
    >>> [(r["site"], r["kind"], r["images"], r["spatial_std"]) for r in rows][:2]
    [(1, 'eca', 3, 0.0), (2, 'eca', 3, 0.0)]
    """
    layers = _checked_layers(model)
    images = np.asarray(images)
    expected = tuple(model.input_shape[1:])
    if images.ndim != len(expected) + 1 or tuple(images.shape[1:]) != expected or not len(images):
        raise ValueError(
            f"`images` must be a non-empty batch (N, {', '.join(map(str, expected))}) for "
            f"model {model.name!r}, got shape {images.shape}."
        )
    check_positive_int("batch_size", batch_size)
    site_inputs = _site_inputs(model, layers)
    totals = [
        {"sum": 0.0, "sq": 0.0, "min": np.inf, "max": -np.inf, "count": 0, "sp": 0.0, "ch": 0.0}
        for _ in layers
    ]
    for start in range(0, len(images), batch_size):
        batch = images[start : start + batch_size].astype("float32")
        for t, (_, _, layer), x in zip(totals, layers, site_inputs(batch), strict=True):
            gate = keras.ops.convert_to_numpy(_gate(layer, x)).astype("float64")
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
