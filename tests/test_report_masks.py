"""keras_attn.report.mask_table: the records' attention-mask statistics, averaged over runs."""

import math

import numpy as np
import pytest
from report_helpers import make_record

from keras_attn import report
from keras_attn.report import mask_table as masks


def _layer(site, kind, std, spatial_std, mean=0.5):
    return {
        "site": site,
        "kind": kind,
        "name": f"{kind}_{site}",
        "images": 1000,
        "mean": mean,
        "std": std,
        "min": mean - 2 * std,
        "max": mean + 2 * std,
        "spatial_std": spatial_std,
        "channel_std": std / 2,
    }


def _records():
    recs = []
    for run, (acc, scale) in enumerate(((0.74, 1.0), (0.76, 3.0))):
        rec = make_record("cnn_conv_ae_eca", run, acc)
        rec["mask_statistics"] = [
            _layer(1, "eca", 0.05 * scale, 2.78e-20 * scale),  # zero, up to rounding
            _layer(1, "conv_ae", 0.002 * scale, 0.001 * scale),
            _layer(2, "eca", 0.04 * scale, 0.0),
            _layer(2, "conv_ae", 0.003 * scale, 0.002 * scale),
        ]
        recs.append(rec)
    recs.append(make_record("cnn_conv_ae_eca", 2, 0.70))  # an older record: no key
    cnn = make_record("cnn", 0, 0.7)
    cnn["mask_statistics"] = None  # a model without attention
    return recs + [cnn]


def test_mask_statistics_are_averaged_over_the_runs_that_have_them():
    rows = report.summarize_masks(_records())
    assert [(r["model"], r["site"], r["kind"]) for r in rows] == [
        ("cnn_conv_ae_eca", 1, "eca"),
        ("cnn_conv_ae_eca", 1, "conv_ae"),
        ("cnn_conv_ae_eca", 2, "eca"),
        ("cnn_conv_ae_eca", 2, "conv_ae"),
    ]
    ae1 = rows[1]
    assert (ae1["runs"], ae1["runs_with_masks"]) == (3, 2)
    assert ae1["test_accuracy"] == pytest.approx(np.mean([0.74, 0.76]))  # the runs with masks
    assert ae1["std"] == pytest.approx(np.mean([0.002, 0.006]))
    assert ae1["spatial_std"] == pytest.approx(np.mean([0.001, 0.003]))
    assert ae1["channel_std"] == pytest.approx(np.mean([0.001, 0.003]))
    assert ae1["mean"] == pytest.approx(0.5)
    assert set(rows[0]) == set(masks.MASK_FIELDS)


def test_no_mask_statistics_no_rows_and_no_section():
    recs = [make_record("cnn", 0, 0.7), make_record("cnn_eca", 0, 0.8)]
    assert report.summarize_masks(recs) == []
    assert "Attention masks" not in report.format_markdown(report.summarize(recs), recs)


def test_markdown_reports_mask_std_next_to_accuracy():
    recs = _records()
    md = report.format_markdown(report.summarize(recs), recs)
    assert "### Attention masks" in md
    assert "| `cnn_conv_ae_eca` | 2/3 | 75.00 | 1 | eca | 0.5 | 0.1 | 0 | 0.05 |" in md
    assert "|  |  |  | 1 | conv_ae | 0.5 | 0.004 | 0.002 | 0.002 |" in md


def test_missing_values_stay_missing():
    rec = make_record("cnn_eca", 0, 0.7)
    rec["mask_statistics"] = [{"site": 1, "kind": "eca", "mean": 0.5, "std": None}]
    [row] = report.summarize_masks([rec])
    assert math.isnan(row["std"]) and math.isnan(row["spatial_std"])
    assert "| n/a | n/a | n/a |" in report.format_mask_table([row])[-1]
