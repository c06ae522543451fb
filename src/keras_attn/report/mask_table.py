"""How much the attention masks vary, from the records, averaged over runs per model and site.

A gate whose mask hardly varies scales its input uniformly, which the BatchNorm
after it undoes: next to the accuracy, these figures say whether a gate attends.
"""

from __future__ import annotations

import numpy as np

from keras_attn.report._format import pct
from keras_attn.report.reading import accuracies, group_records

__all__ = ["MASK_FIELDS", "format_mask_table", "summarize_masks"]

#: Keys of a `summarize_masks` row.
MASK_FIELDS = (
    "settings_id",
    "model",
    "runs",
    "runs_with_masks",
    "test_accuracy",
    "site",
    "kind",
    "mean",
    "std",
    "spatial_std",
    "channel_std",
)
_STATS = ("mean", "std", "spatial_std", "channel_std")


def summarize_masks(records):
    """Per (settings, model, attention layer): the mean over runs of its mask's statistics.

    Records of models with attention carry ``mask_statistics`` (one dict per
    attention layer, from `keras_attn.attention_maps.mask_statistics`);
    models without attention have ``None`` and older records lack the key:
    neither gets a row.

    Args:
        records: record dicts (from `load_records`).

    Returns:
        A list of dicts with the keys of `MASK_FIELDS`: ``runs`` (runs of the
        model), ``runs_with_masks`` (runs with statistics), ``test_accuracy``
        (mean over those runs), the layer's ``site`` and ``kind``, and the mean
        over those runs of the mask's ``mean``, ``std``, ``spatial_std`` and
        ``channel_std``.

    Example:
    >>> mask = {"site": 1, "kind": "conv_ae", "mean": 0.5, "std": 0.02, "min": 0.4, "max": 0.6,
    ...         "spatial_std": 0.01, "channel_std": 0.001}
    >>> recs = [{"settings_id": "s", "model": "cnn_conv_ae", "test_accuracy": a,
    ...          "mask_statistics": [dict(mask, std=s)]} for a, s in ((0.74, 0.02), (0.76, 0.04))]
    >>> row = summarize_masks(recs + [{"settings_id": "s", "model": "cnn_conv_ae"}])[0]
    >>> row["runs"], row["runs_with_masks"], round(row["test_accuracy"], 3), round(row["std"], 3)
    (3, 2, 0.75, 0.03)
    """
    rows = []
    for sid, by_model in group_records(records).items():
        for model, recs in by_model.items():
            with_masks = [r for r in recs if r.get("mask_statistics")]
            if not with_masks:
                continue
            layers = {}
            for rec in with_masks:
                for i, layer in enumerate(rec["mask_statistics"]):
                    key = (layer.get("site"), layer.get("kind"), i)
                    layers.setdefault(key, []).append(layer)
            acc = accuracies(with_masks)
            for (site, kind, _), stats in layers.items():
                row = {
                    "settings_id": sid,
                    "model": model,
                    "runs": len(recs),
                    "runs_with_masks": len(with_masks),
                    "test_accuracy": float(np.mean(acc)) if len(acc) else float("nan"),
                    "site": site,
                    "kind": kind,
                }
                for name in _STATS:
                    values = [s[name] for s in stats if s.get(name) is not None]
                    row[name] = float(np.mean(values)) if values else float("nan")
                rows.append(row)
    return rows


#: Below this a statistic is rounding error of a zero (an ECA mask's spread over
#: positions, computed in float32, comes out near 1e-20): shown as 0.
_ZERO = 1e-12


def _num(x):
    if x != x:
        return "n/a"
    return "0" if abs(x) < _ZERO else f"{x:.3g}"


def format_mask_table(mask_rows):
    """`summarize_masks` rows of one settings group as a Markdown table (no rows: ``[]``).

    Example:
    >>> row = {"model": "cnn_conv_ae", "runs": 8, "runs_with_masks": 8, "test_accuracy": 0.747,
    ...        "site": 1, "kind": "conv_ae", "mean": 0.5, "std": 0.0021, "spatial_std": 0.0004,
    ...        "channel_std": 0.0012}
    >>> print("\\n".join(format_mask_table([row])))  # doctest: +NORMALIZE_WHITESPACE
    | model | runs with masks | test accuracy | site | block | mask mean | mask std | spatial std
      | channel std |
    |---|---|---|---|---|---|---|---|---|
    | `cnn_conv_ae` | 8/8 | 74.70 | 1 | conv_ae | 0.5 | 0.0021 | 0.0004 | 0.0012 |
    """
    if not mask_rows:
        return []
    lines = [
        "| model | runs with masks | test accuracy | site | block | mask mean | mask std "
        "| spatial std | channel std |",
        "|---|---|---|---|---|---|---|---|---|",
    ]
    last = None
    for r in mask_rows:
        same = r["model"] == last
        last = r["model"]
        lines.append(
            f"| {'' if same else '`' + r['model'] + '`'} "
            f"| {'' if same else str(r['runs_with_masks']) + '/' + str(r['runs'])} "
            f"| {'' if same else pct(r['test_accuracy'])} | {r['site']} | {r['kind']} "
            f"| {_num(r['mean'])} | {_num(r['std'])} | {_num(r['spatial_std'])} "
            f"| {_num(r['channel_std'])} |"
        )
    return lines
