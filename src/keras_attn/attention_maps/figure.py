"""The picture of where a model looks: the image, its Grad-CAM, and each gate as what it is."""

from __future__ import annotations

from pathlib import Path

import keras
import numpy as np

from keras_attn.attention_maps.geometry import feature_grid, stretched_grid
from keras_attn.attention_maps.gradcam import grad_cam, gradcam_layer
from keras_attn.attention_maps.masks import attention_maps, gate_parts
from keras_attn.attention_maps.sites import attention_layers, check_image, check_model

__all__ = ["CELL_INCHES", "SCALES", "figure_inches", "plot_attention_maps"]

#: Size of one panel of the grid, in inches (the PNG is ``figure_inches(...) * dpi`` pixels).
CELL_INCHES = 2.2
_COLORBAR_INCHES = 0.9
_TITLE_INCHES = 0.7
_LABEL_INCHES = 0.5  # under each panel: its notes
_TEXT_INCHES = 0.6  # a row of text (a constant gate)
_LEFT_INCHES = 0.6
_PAD_INCHES = (0.35, 0.1, 0.3)  # inside a cell: left (tick labels), right, top (title)
#: Colour scales of `plot_attention_maps`.
SCALES = ("panel", "fixed")
_HEADER = ("input", "Grad-CAM", "Grad-CAM over the input")


def figure_inches(rows, cols, text_rows=0):
    """``(width, height)`` in inches of a grid of ``rows`` x ``cols`` panels.

    Args:
        rows: int, rows of the grid, ``text_rows`` of them a line of text each.
        cols: int, panels per row.
        text_rows: int, default 0.

    Example:
    >>> figure_inches(4, 3), figure_inches(2, 4, text_rows=1)
    ((8.1, 11.5), (10.3, 4.0))
    """
    panel_rows = rows - text_rows
    return (
        round(_LEFT_INCHES + cols * CELL_INCHES + _COLORBAR_INCHES, 6),
        round(
            panel_rows * (CELL_INCHES + _LABEL_INCHES) + text_rows * _TEXT_INCHES + _TITLE_INCHES, 6
        ),
    )


class _Layout:
    """Axes of a figure placed in inches: rows from the top, cells of `CELL_INCHES`."""

    def __init__(self, fig, width, height):
        self.fig, self.width, self.height = fig, width, height
        self.top = _TITLE_INCHES  # inches from the figure's top to the next row

    def row(self, text=False):
        """Start a row; return its top (inches from the figure's top)."""
        top = self.top
        self.top += _TEXT_INCHES if text else CELL_INCHES + _LABEL_INCHES
        return top

    def axes(self, top, col, span=1, height=CELL_INCHES):
        left_pad, right_pad, top_pad = _PAD_INCHES
        x = _LEFT_INCHES + col * CELL_INCHES + left_pad
        w = span * CELL_INCHES - left_pad - right_pad
        h = height - top_pad if height == CELL_INCHES else height
        y = self.height - top - (top_pad if height == CELL_INCHES else 0) - h
        return self.fig.add_axes([x / self.width, y / self.height, w / self.width, h / self.height])

    def colorbar(self, picture, top, label):
        x = self.width - _COLORBAR_INCHES + 0.15
        h = CELL_INCHES - _PAD_INCHES[2]
        y = self.height - top - _PAD_INCHES[2] - h
        cax = self.fig.add_axes(
            [x / self.width, y / self.height, 0.12 / self.width, h / self.height]
        )
        self.fig.colorbar(picture, cax=cax).set_label(label, fontsize=8)
        cax.tick_params(labelsize=7)


def _note(ax, text, below=0.05):
    ax.text(0.5, -below, text, transform=ax.transAxes, ha="center", va="top", fontsize=7)


def _limits(values, scale):
    """Colour (or bar) limits: 0..1, or the values' own range (a flat one centred)."""
    lo, hi = float(np.min(values)), float(np.max(values))
    if scale == "fixed":
        return 0.0, 1.0
    if hi - lo < 1e-6:
        return lo - 0.01, hi + 0.01
    return lo, hi


def _draw_image(ax, image, title):
    shown = image[..., 0] if image.shape[-1] == 1 else image
    ax.imshow(shown.astype("uint8"), cmap="gray" if shown.ndim == 2 else None)
    ax.set_title(title, fontsize=9)
    ax.set_axis_off()


def _draw_spatial(ax, part, grid, image_size, scale, title):
    """The mask where its positions lie in the image (`feature_grid`); grey beyond."""
    values = part["values"]
    vmin, vmax = _limits(values, scale)
    height, width = image_size
    grid = grid if grid is not None else stretched_grid(values.shape, image_size)
    (row0, row_step), (col0, col_step) = grid
    extent = (
        col0 - col_step / 2,
        col0 + (values.shape[1] - 0.5) * col_step,
        row0 + (values.shape[0] - 0.5) * row_step,
        row0 - row_step / 2,
    )
    picture = ax.imshow(values, cmap="viridis", vmin=vmin, vmax=vmax, extent=extent)
    ax.set_xlim(-0.5, width - 0.5)
    ax.set_ylim(height - 0.5, -0.5)
    ax.set_facecolor("#d9d9d9")
    ax.set_title(title, fontsize=9)
    ax.set_xticks([])
    ax.set_yticks([])
    channels = part["shape"][-1]
    how = f"mean of {channels} channels, " if channels > 1 else ""
    size = "x".join(map(str, part["shape"][:2]))
    flat = " (all equal)" if np.ptp(values) < 1e-6 else ""
    _note(ax, f"{how}{size}\nrange [{values.min():.3f}, {values.max():.3f}]{flat}")
    return picture


def _draw_channel(ax, part, scale, title, what="channel weights"):
    values = part["values"]
    lo, hi = _limits(values, scale)
    pad = 0.0 if scale == "fixed" else 0.08 * (hi - lo)
    ax.bar(np.arange(len(values)), values, width=1.0, color="#3b6ea8", linewidth=0)
    ax.axhline(float(values.mean()), color="#d95f02", linewidth=1, linestyle="--")
    ax.set_ylim(lo - pad, hi + pad)
    ax.set_xlim(-0.5, len(values) - 0.5)
    ax.set_xticks([0, len(values) - 1])
    ax.tick_params(labelsize=7, length=2, pad=1)
    ax.set_title(title, fontsize=9)
    flat = " (all equal)" if np.ptp(values) < 1e-6 else ""
    _note(
        ax,
        f"{len(values)} {what} (dashed: mean)\n"
        f"range [{values.min():.3f}, {values.max():.3f}]{flat}",
        below=0.12,
    )


def _draw_constant(ax, parts):
    sites = ", ".join(str(p["site"]) for p in parts)
    value = parts[0]["values"]
    ax.text(
        0.5,
        0.5,
        f"{parts[0]['kind']} gate at site(s) {sites}: {value:g} at every position and "
        "channel,\nfor every image: a constant scaling, no attention",
        ha="center",
        va="center",
        fontsize=9,
        transform=ax.transAxes,
    )
    ax.set_axis_off()


def _class_label(index, probabilities, class_names):
    name = class_names[index] if class_names is not None else f"class {index}"
    return f"{name} (p {probabilities[index]:.2f})"


def _rows_of(parts):
    """The parts grouped in rows, one per (block, part) in network order: ``[(key, parts)]``."""
    rows = {}
    for p in parts:
        rows.setdefault((p["kind"], p["part"]), []).append(p)
    return list(rows.items())


def plot_attention_maps(
    model,
    image,
    out_path,
    title=None,
    scale="panel",
    dpi=100,
    class_index=None,
    layer=None,
    class_names=None,
):
    """Write a PNG of where a model looks in one image: Grad-CAM, then every gate.

    The first row is the image, its Grad-CAM heatmap for a class (see
    `grad_cam`) and the heatmap over the image. Then one row per attention
    block (and per part of a CBAM block), one panel per site: a spatial gate's
    mask (CBAM's spatial part, ``cbam_spatial``; the autoencoder gates' mean
    over channels), a channel gate's weights as bars (ECA, SE, CBAM's channel
    part), or one line saying a constant gate is constant; GC, which adds to
    its input, gives its pooling weights over positions and, as bars, what it
    adds to each channel. ``cnn`` gets the first row only.

    Args:
        model: a Keras model (any keras_attn variant; a SavedModel has no layers).
        image: uint8 array ``(height, width, channels)`` at the model's input size.
        out_path: str or Path of the PNG (parent folders are created).
        title: str or None, default None (the model's name).
        scale: str, default ``"panel"``: each mask's colours and each bar
            plot's axis stretched over its own range (printed under it), so a
            pattern shows even when a gate varies little; ``"fixed"`` draws all
            on one 0..1 scale, to compare strengths.
        dpi: int, default 100. The PNG is ``figure_inches(rows, cols, text_rows)``
            x ``dpi`` pixels.
        class_index: int or None, default None (the predicted class): the class
            Grad-CAM explains.
        layer: str or None, default None: the layer Grad-CAM uses (see `grad_cam`).
        class_names: list of str or None: names for the titles.

    Returns:
        dict: ``path`` (Path), ``rows``, ``cols``, ``text_rows`` (rows that are a
        line of text: constant gates), ``class_index``, ``layer``,
        ``heatmap`` (as `grad_cam`), ``parts`` (as `gate_parts`; empty without
        attention) and ``maps`` (as `attention_maps`; empty without attention).

    Raises:
        ValueError: as `grad_cam`, or an unknown ``scale``.

    Example:
    >>> import tempfile
    >>> import numpy as np
    >>> import keras_attn
    >>> model = keras_attn.build("cnn_cbam", blocks=[8, 16], dense_units=16)
    >>> path = f"{tempfile.mkdtemp()}/maps.png"
    >>> out = plot_attention_maps(model, np.zeros((32, 32, 3), "uint8"), path, dpi=20)
    >>> out["rows"], out["cols"], [(p["kind"], p["part"]) for p in out["parts"]][:2]
    (3, 4, [('cbam', 'channel'), ('cbam', 'spatial')])
    """
    if scale not in SCALES:
        raise ValueError(f"`scale` must be one of {SCALES}, got {scale!r}.")
    image = check_image(check_model(model), image)
    probabilities = keras.ops.convert_to_numpy(
        model(image[None].astype("float32"), training=False)
    )[0]
    if class_index is None:
        class_index = int(np.argmax(probabilities))
    layer = layer if layer is not None else gradcam_layer(model)
    heatmap = grad_cam(model, image, class_index=class_index, layer=layer)
    has_attention = bool(attention_layers(model))
    parts = gate_parts(model, image) if has_attention else []
    maps = attention_maps(model, image) if has_attention else []

    import matplotlib

    matplotlib.use("Agg", force=False)
    import matplotlib.pyplot as plt

    part_rows = _rows_of(parts)
    sites = sorted({p["site"] for p in parts})
    rows, cols = 1 + len(part_rows), max(len(_HEADER), len(sites))
    text_rows = sum(part == "constant" for (_, part), _ in part_rows)
    width, height = figure_inches(rows, cols, text_rows)
    fig = plt.figure(figsize=(width, height), dpi=dpi)
    layout = _Layout(fig, width, height)

    top = layout.row()
    label = _class_label(class_index, probabilities, class_names)
    _draw_image(layout.axes(top, 0), image, "input")
    ax = layout.axes(top, 1)
    heat = ax.imshow(heatmap, cmap="jet", vmin=0.0, vmax=1.0)
    ax.set_title(f"Grad-CAM: {label}", fontsize=9)
    ax.set_axis_off()
    _note(ax, f"at {layer}" + ("; all zero: no evidence" if not heatmap.any() else ""))
    ax = layout.axes(top, 2)
    _draw_image(ax, image, "Grad-CAM over the input")
    ax.imshow(heatmap, cmap="jet", vmin=0.0, vmax=1.0, alpha=0.45)
    layout.colorbar(heat, top, "Grad-CAM")

    for (kind, part), row_parts in part_rows:
        top = layout.row(text=part == "constant")
        if part == "constant":
            _draw_constant(layout.axes(top, 0, span=cols, height=_TEXT_INCHES), row_parts)
            continue
        # A block split in parts (CBAM) names the part: "cbam channel", "cbam spatial".
        split = sum(k == kind for k, _ in (key for key, _ in part_rows)) > 1
        name = f"{kind} {part}" if split else kind
        for p in row_parts:
            ax = layout.axes(top, sites.index(p["site"]))
            # A blended gate (start="identity") is drawn by its effective mask.
            blend = f" (blend {p['alpha']:.2f})" if p.get("alpha") is not None else ""
            if part == "channel":
                _draw_channel(ax, p, scale, f"site {p['site']}: {name}{blend}")
                continue
            if part == "addend":  # GC's added values: any sign, their own range
                title = f"site {p['site']}: {name}{blend}"
                _draw_channel(ax, p, "panel", title, "values added")
                continue
            grid = feature_grid(model, p["name"])
            # GC's context: softmax weights (summing to 1), on their own range.
            what = "weights" if part == "context" else "mask"
            where = f"site {p['site']}: {name}{blend} {what}"
            own = "panel" if part == "context" else scale
            picture = _draw_spatial(ax, p, grid, image.shape[:2], own, where)
        if part == "spatial" and scale == "fixed":
            layout.colorbar(picture, top, "mask (0..1)")
    how = "one 0..1 scale" if scale == "fixed" else "each panel stretched over its own range"
    fig.suptitle(
        f"{title if title is not None else model.name}\n"
        f"Grad-CAM (red: evidence for the class); gates: {how}",
        fontsize=10,
        y=1 - 0.08 / height,
        va="top",
    )
    out_path = Path(out_path)
    out_path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(out_path, dpi=dpi)
    plt.close(fig)
    return {
        "path": out_path,
        "rows": rows,
        "cols": cols,
        "text_rows": text_rows,
        "class_index": class_index,
        "layer": layer,
        "heatmap": heatmap,
        "parts": parts,
        "maps": maps,
    }
