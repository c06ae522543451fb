"""Tests of keras_attn.report (summary, tables, files) and keras-attn report on records."""

import csv
import json
import logging
import math
import shutil
import sys

import numpy as np
import pytest
from data_helpers import REPO
from report_helpers import ACC, make_record, make_records, write_records
from scipy import stats

from keras_attn import report
from keras_attn.report import summary
from keras_attn.report.stats import bootstrap_diff_ci

COMMITTED = REPO / "results" / "cifar10"
TEXT_FILES = ("report.md", "report.csv", "runs.csv", "results.jsonl")


def _script():
    """``keras-attn report``'s module (its ``main(argv)``)."""
    from keras_attn.cli import report as command

    return command


def test_statistics_match_scipy():
    rows = {r["model"]: r for r in report.summarize(make_records())}
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


def test_comparisons_with_the_baseline():
    rows = {r["model"]: r for r in report.summarize(make_records())}
    p = [rows[m]["p_welch"] for m in ("cnn3", "cnn_eca")]
    assert [rows["cnn3"]["p_holm"], rows["cnn_eca"]["p_holm"]] == pytest.approx(
        [min(1, 2 * min(p)), min(1, max(2 * min(p), max(p)))]
    )
    eca, cnn = ACC["cnn_eca"] + [0.60], ACC["cnn"]
    u = stats.mannwhitneyu(eca, cnn).statistic
    assert rows["cnn_eca"]["prob_improvement"] == pytest.approx(u / (len(eca) * len(cnn)))
    low, high = rows["cnn_eca"]["diff_ci95_low"], rows["cnn_eca"]["diff_ci95_high"]
    assert (low, high) == bootstrap_diff_ci(eca, cnn)
    assert low < rows["cnn_eca"]["diff_vs_baseline"] < high
    assert math.isnan(rows["cnn"]["p_holm"]) and math.isnan(rows["cnn"]["prob_improvement"])


def test_small_samples_give_nan_not_errors():
    rows = report.summarize([make_record("cnn", 0, 0.7), make_record("cnn_eca", 0, 0.8)])
    r = rows[1]
    assert r["n"] == 1 and r["mean"] == pytest.approx(0.8)
    assert math.isnan(r["std"]) and math.isnan(r["ci95_low"]) and math.isnan(r["p_welch"])
    assert math.isnan(r["p_holm"]) and math.isnan(r["diff_ci95_low"])
    assert r["prob_improvement"] == 1.0  # defined for one run each
    md = report.format_markdown(rows)
    assert "n/a" in md


def test_markdown_has_table_footnotes_and_settings():
    records = make_records()
    md = report.format_markdown(report.summarize(records), records)
    assert "| model | runs | diverged | n | mean | std | 95% CI | diff vs cnn |" in md
    assert "| `cnn3` [1] | 4/5 | 1 | 3 |" in md
    assert "never used it in its forward pass" in md  # the cnn3 footnote
    assert "| `cnn` | 5/5 | 0 | 5 | 70.40 |" in md
    assert "optimizer sgd, learning rate 0.1" in md and "tensorflow backend, CPU" in md
    assert "| diff 95% CI | p (Welch) | p (Holm) | P(improvement) | trainable params |" in md
    assert "Differences from `cnn` that survive Holm at 0.05 (of 2 compared): `cnn3`" in md
    assert "seeds: base seed 0 + run index (runs 0-5)" in md


def test_markdown_data_line_is_prose_not_a_dict():
    rec = make_record("cnn", 0, 0.7)
    rec["data"] = {
        "source": {"kind": "tfds", "location": "tfds:cifar10", "version": "3.0.2"},
        "class_names": [str(i) for i in range(10)],
        "image_shape": [32, 32, 3],
        "counts": {"train": 2000, "val": 500, "test": 1000},
        "split": {"split_seed": 0},
        "subset": {"train": 2000, "val": 500, "test": 1000, "test_seed": 0},
        "fingerprint": "0123456789abcdef0123",
    }
    md = report.format_markdown(report.summarize([rec]), [rec])
    [line] = [x for x in md.splitlines() if x.startswith("- data:")]
    assert line == (
        "- data: tensorflow-datasets `cifar10` 3.0.2: 10 classes of 32x32x3 images, 2,000 train "
        "/ 500 val / 1,000 test images "
        "(validation: seeded permutation of the train images, seed 0), cut to the first 2,000 "
        "train, the first 500 val and 1,000 random test images (test sample seed 0); data "
        "fingerprint `0123456789abcdef`"
    )
    assert "{" not in line


def test_write_report_files(tmp_path):
    write_records(tmp_path, make_records())
    paths = report.write_report(tmp_path)
    assert set(paths) == {"markdown", "csv", "runs_csv", "jsonl", "png", "curves_png"}
    with open(paths["csv"]) as f:
        rows = list(csv.DictReader(f))
    assert [r["model"] for r in rows] == ["cnn", "cnn3", "cnn_eca"]
    assert tuple(rows[0]) == summary.CSV_FIELDS
    assert float(rows[1]["p_welch"]) < 0.05 < float(rows[2]["p_welch"])  # cnn3 worse; eca n.s.
    assert rows[0]["p_welch"] == ""  # the baseline has no comparison
    assert float(rows[1]["p_holm"]) < 0.05 < float(rows[2]["p_holm"])
    lines = open(paths["jsonl"]).read().splitlines()
    assert len(lines) == 15 and all(json.loads(x)["model"] for x in lines)
    with open(paths["runs_csv"]) as f:
        runs = list(csv.DictReader(f))
    assert len(runs) == 15 and runs[0]["backend"] == "tensorflow"
    assert open(paths["png"], "rb").read(8) == b"\x89PNG\r\n\x1a\n"
    assert open(paths["curves_png"], "rb").read(8) == b"\x89PNG\r\n\x1a\n"


def _written(folder, names):
    return {name: (folder / name).read_bytes() for name in names}


def test_report_is_byte_identical_when_remade(tmp_path):
    """The committed CIFAR-10 records give the same files twice (and the committed ones)."""
    if not (COMMITTED / "records").is_dir():
        pytest.skip("no committed records in results/cifar10")
    out = tmp_path / "cifar10"
    shutil.copytree(COMMITTED / "records", out / "records")
    report.write_report(out)
    first = _written(out, TEXT_FILES + ("report.png", "learning_curves.png"))
    report.write_report(out)
    assert _written(out, first) == first
    assert b"Software" not in first["report.png"]  # no matplotlib version in the PNG
    committed = [n for n in TEXT_FILES if (COMMITTED / n).exists()]
    assert _written(out, committed) == _written(COMMITTED, committed)


def test_without_matplotlib_the_tables_are_written(tmp_path, monkeypatch, caplog):
    write_records(tmp_path, make_records())
    for name in [m for m in sys.modules if m == "matplotlib" or m.startswith("matplotlib.")]:
        monkeypatch.delitem(sys.modules, name)
    monkeypatch.setitem(sys.modules, "matplotlib", None)  # import matplotlib fails
    with caplog.at_level(logging.WARNING, logger="keras_attn.report.write"):
        paths = report.write_report(tmp_path)
    assert set(paths) == {"markdown", "csv", "runs_csv", "jsonl"}
    assert not (tmp_path / "report.png").exists() and (tmp_path / "report.md").exists()
    assert [r.getMessage() for r in caplog.records] == [
        "report.png and learning_curves.png need matplotlib (pip install matplotlib): not written."
    ]


def test_mixed_settings_are_reported_apart(tmp_path):
    recs = make_records() + [make_record("cnn", i, 0.5, sid="bbbb") for i in range(3)]
    rows = report.summarize(recs)
    cnn_rows = [r for r in rows if r["model"] == "cnn"]
    assert [(r["settings_id"], r["n"]) for r in cnn_rows] == [("aaaa", 5), ("bbbb", 3)]
    assert cnn_rows[1]["mean"] == pytest.approx(0.5)
    paths = report.write_report(tmp_path, recs)
    assert open(paths["png"], "rb").read(4) == b"\x89PNG"
    report.plot_summary(rows, tmp_path / "means_only.png")  # without records: no per-run dots
    assert (tmp_path / "means_only.png").read_bytes()[:4] == b"\x89PNG"


def test_load_records_errors(tmp_path):
    with pytest.raises(FileNotFoundError, match="does not exist"):
        report.load_records(tmp_path / "nope")
    with pytest.raises(FileNotFoundError, match="No records"):
        report.load_records(tmp_path)


def test_report_script_recreates_everything_from_records(tmp_path, capsys):
    write_records(tmp_path, make_records())
    module = _script()
    assert module.main([str(tmp_path), "--no-plot"]) == 0
    assert "| `cnn_eca` | 6/5 | 1 | 6 |" in capsys.readouterr().out
    assert (tmp_path / "report.md").exists() and not (tmp_path / "report.png").exists()
    assert module.main([str(tmp_path / "missing")]) == 2
    assert "does not exist" in capsys.readouterr().err


def test_report_script_rewrites_a_readme_block(tmp_path, capsys):
    write_records(tmp_path, make_records())
    readme = tmp_path / "README.md"
    readme.write_text("# Title\n\n<!-- results:begin -->\nOLD TEXT\n<!-- results:end -->\n\nEnd.\n")
    module = _script()
    args = [str(tmp_path), "--no-plot", "--readme", str(readme)]
    assert module.main(args) == 0
    first = readme.read_bytes()
    assert b"OLD TEXT" not in first and first.endswith(b"<!-- results:end -->\n\nEnd.\n")
    assert "results block rewritten" in capsys.readouterr().out
    assert module.main(args) == 0
    assert readme.read_bytes() == first
    assert "results block unchanged" in capsys.readouterr().out
    (tmp_path / "NOTES.md").write_text("# No markers\n")
    assert module.main(args[:-1] + [str(tmp_path / "NOTES.md")]) == 2
    assert "<!-- results:begin -->" in capsys.readouterr().err
