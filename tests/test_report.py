"""Tests of keras_attn.report and scripts/report.py on hand-made records."""

import csv
import importlib.util
import json
import math

import numpy as np
import pytest
from data_helpers import REPO
from scipy import stats

from keras_attn import report
from keras_attn._files import json_line as _json_line

ACC = {
    "cnn": [0.70, 0.71, 0.69, 0.72, 0.70],
    "cnn_eca": [0.73, 0.74, 0.72, 0.75, 0.73],
    "cnn3": [0.68, 0.66, 0.67],
}
PARAMS = {"cnn": 2_625_866, "cnn_eca": 2_625_882, "cnn3": 1_677_130}


def _record(model, run, acc, sid="aaaa", diverged=False, runs=5):
    return {
        "model": model,
        "run": run,
        "seed": run,
        "settings_id": sid,
        "status": "diverged" if diverged else "finished",
        "diverged": diverged,
        "best_epoch": None if acc is None else 3,
        "best_val_accuracy": acc,
        "test_accuracy": acc,
        "test_loss": 1.0,
        "trainable_params": PARAMS.get(model, 1),
        "epoch_seconds": [2.0, 2.0],
        "wall_time_s": 4.5,
        "settings": {"runs": runs, "optimizer": "sgd", "learning_rate": 0.1, "epochs": 10},
        "preprocessing": "none",
        "augmentation": "none",
        "data": {"source": {"kind": "folder", "location": "/d"}, "counts": {}, "split": {}},
        "environment": {"backend": "tensorflow", "device": "CPU", "host": "h"},
    }


def _records():
    recs = [_record(m, i, a) for m, accs in ACC.items() for i, a in enumerate(accs)]
    recs.append(_record("cnn_eca", 5, 0.60, diverged=True))  # diverged after a good epoch
    recs.append(_record("cnn3", 3, None, diverged=True))  # diverged before any
    return recs


def _write(out, records):
    for r in records:
        p = out / "records" / r["settings_id"] / r["model"] / f"run-{r['run']:04d}.json"
        p.parent.mkdir(parents=True, exist_ok=True)
        p.write_bytes(_json_line(r))


def test_statistics_match_scipy():
    rows = {r["model"]: r for r in report.summarize(_records())}
    assert list(rows) == ["cnn", "cnn3", "cnn_eca"]  # registry order, baseline first
    eca = np.array(ACC["cnn_eca"] + [0.60])
    cnn = np.array(ACC["cnn"])
    r = rows["cnn_eca"]
    assert (r["runs"], r["diverged"], r["n"], r["planned_runs"]) == (6, 1, 6, 5)
    assert r["mean"] == pytest.approx(eca.mean())
    assert r["std"] == pytest.approx(eca.std(ddof=1))
    half = stats.t.ppf(0.975, 5) * eca.std(ddof=1) / math.sqrt(6)
    assert (r["ci95_low"], r["ci95_high"]) == pytest.approx((eca.mean() - half, eca.mean() + half))
    assert r["diff_vs_baseline"] == pytest.approx(eca.mean() - cnn.mean())
    assert r["p_welch"] == pytest.approx(stats.ttest_ind(eca, cnn, equal_var=False).pvalue)
    assert r["trainable_params"] == 2_625_882
    c3 = rows["cnn3"]
    assert (c3["runs"], c3["diverged"], c3["n"]) == (4, 1, 3)  # shown, not dropped
    assert math.isnan(rows["cnn"]["p_welch"]) and rows["cnn"]["baseline"] == "cnn"


def test_small_samples_give_nan_not_errors():
    rows = report.summarize([_record("cnn", 0, 0.7), _record("cnn_eca", 0, 0.8)])
    r = rows[1]
    assert r["n"] == 1 and r["mean"] == pytest.approx(0.8)
    assert math.isnan(r["std"]) and math.isnan(r["ci95_low"]) and math.isnan(r["p_welch"])
    md = report.format_markdown(rows)
    assert "n/a" in md


def test_markdown_has_table_footnotes_and_settings():
    records = _records()
    md = report.format_markdown(report.summarize(records), records)
    assert "| model | runs | diverged | n | mean | std | 95% CI | diff vs cnn |" in md
    assert "| `cnn3` [1] | 4/5 | 1 | 3 |" in md
    assert "never used it in its forward pass" in md  # the cnn3 footnote
    assert "| `cnn` | 5/5 | 0 | 5 | 70.40 |" in md
    assert "optimizer sgd, learning rate 0.1" in md and "tensorflow backend, CPU" in md


def test_write_report_files(tmp_path):
    _write(tmp_path, _records())
    paths = report.write_report(tmp_path)
    assert set(paths) == {"markdown", "csv", "runs_csv", "jsonl", "png"}
    with open(paths["csv"]) as f:
        rows = list(csv.DictReader(f))
    assert [r["model"] for r in rows] == ["cnn", "cnn3", "cnn_eca"]
    assert tuple(rows[0]) == report.CSV_FIELDS
    assert float(rows[1]["p_welch"]) < 0.05 < float(rows[2]["p_welch"])  # cnn3 worse; eca n.s.
    assert rows[0]["p_welch"] == ""  # the baseline has no comparison
    lines = open(paths["jsonl"]).read().splitlines()
    assert len(lines) == 15 and all(json.loads(x)["model"] for x in lines)
    with open(paths["runs_csv"]) as f:
        runs = list(csv.DictReader(f))
    assert len(runs) == 15 and runs[0]["backend"] == "tensorflow"
    assert open(paths["png"], "rb").read(8) == b"\x89PNG\r\n\x1a\n"


def test_mixed_settings_are_reported_apart(tmp_path):
    recs = _records() + [_record("cnn", i, 0.5, sid="bbbb") for i in range(3)]
    rows = report.summarize(recs)
    cnn_rows = [r for r in rows if r["model"] == "cnn"]
    assert [(r["settings_id"], r["n"]) for r in cnn_rows] == [("aaaa", 5), ("bbbb", 3)]
    assert cnn_rows[1]["mean"] == pytest.approx(0.5)


def test_load_records_errors(tmp_path):
    with pytest.raises(FileNotFoundError, match="does not exist"):
        report.load_records(tmp_path / "nope")
    with pytest.raises(FileNotFoundError, match="No records"):
        report.load_records(tmp_path)


def test_report_script_recreates_everything_from_records(tmp_path, capsys):
    _write(tmp_path, _records())
    spec = importlib.util.spec_from_file_location("report_script", REPO / "scripts" / "report.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    assert module.main([str(tmp_path), "--no-plot"]) == 0
    assert "| `cnn_eca` | 6/5 | 1 | 6 |" in capsys.readouterr().out
    assert (tmp_path / "report.md").exists() and not (tmp_path / "report.png").exists()
    assert module.main([str(tmp_path / "missing")]) == 2
    assert "does not exist" in capsys.readouterr().err
