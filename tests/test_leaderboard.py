"""Tests of keras_attn.leaderboard and ``keras-attn leaderboard``.

Only one test trains (two tiny models, one epoch each, on 12x12 images): a leaderboard
killed after its first record and rerun gives the records of an uninterrupted one, and
its report regenerates byte for byte. The filling order and the time budget are tested
with a stand-in for the protocol that writes records without training.
"""

import json
import os
import signal
import subprocess
import sys
import time
import types

import numpy as np
import pytest
from data_helpers import SRC, TIMING_KEYS, write_npz

from keras_attn import _files as files
from keras_attn import report, zoo
from keras_attn.cli import leaderboard as cli
from keras_attn.layers import list_gates
from keras_attn.leaderboard import (
    expand_grid,
    gate_model,
    load_leaderboard,
    plan_rounds,
    run_leaderboard,
    write_leaderboard,
)
from keras_attn.leaderboard import rounds as run_module
from keras_attn.protocol.records import record_path

SLIM = {"blocks": [4, 8], "dense_units": 8}
SETTINGS = {"epochs": 1, "batch_size": 16, "val_size": 8, "threads": 1, "model_overrides": SLIM}


@pytest.fixture(scope="module")
def npz(tmp_path_factory):
    folder = tmp_path_factory.mktemp("data")
    return write_npz(folder / "tiny.npz", n_train=40, n_test=8, size=12, num_classes=3)


# ------------------------------------------------------------------------------- the grid


def test_the_grid_expands_as_documented():
    grid = expand_grid("eca,se", "cnn,resnet20", "cifar10,cifar100", runs=3,
                       data_dirs={"cifar10": "/data/cifar10-jpeg.tar.gz"},
                       settings={"epochs": 2})  # fmt: skip
    assert [s.name for s in grid] == [
        "cnn-cifar10-study",
        "cnn-cifar100-study",
        "resnet20-cifar10-study",
        "resnet20-cifar100-study",
    ]
    assert [s.settings.data for s in grid[:2]] == ["/data/cifar10-jpeg.tar.gz", "tfds:cifar100"]
    assert {(s.settings.runs, s.settings.epochs, s.settings.learning_rate) for s in grid} == {
        (3, 2, 0.1)  # the study recipe: no overrides beyond --set
    }
    cnn, resnet = grid[0].models(), grid[2].models()
    assert cnn[:2] == ["cnn", "cnn_eca"] and resnet == ["resnet20", "resnet20_eca", "resnet20_se"]
    # No registered cnn_se: the backbone's own config with the gate at every site.
    assert cnn[2]["name"] == "cnn_se" and cnn[2]["attention"] == ["se"]
    assert {**cnn[2], "name": "cnn", "attention": []} == zoo.get_config("cnn")
    assert gate_model("cnn", "conv_ae") == "cnn_conv_ae"  # the study's conv-AE sizes
    assert expand_grid("all", "resnet20", "cifar10")[0].gates == list_gates()


@pytest.mark.parametrize(
    "kwargs, match",
    [
        ({"gates": "sse"}, r"Unknown gate 'sse'\. Did you mean 'se'.*Valid gates: eca, .*'all'"),
        ({"backbones": "resnet21"}, r"Unknown backbone 'resnet21'.* Valid backbones: cnn, "),
        ({"data": "imagenet"}, r"Unknown data set 'imagenet'\. Valid data sets: cifar10, "),
        ({"recipes": "fastest"}, r"Unknown recipe 'fastest'\. Did you mean 'fast'.* Valid re"),
        ({"gates": "se,se"}, r"Gate listed twice"),
        ({"settings": {"lr": 1}}, r"Unknown protocol setting\(s\) \['lr'\]; valid: augmentation"),
        ({"settings": {"epochs": 0}}, r"`epochs` must be an integer >= 1, got 0"),
        ({"data_dirs": {"c10": "/x"}}, r"\['c10'\] have a path but are not in the grid"),
        ({"backbones": "cnn3", "gates": "conv_ae"}, r"The gate 'conv_ae' on 'cnn3' does not"),
    ],
)
def test_a_bad_grid_entry_gets_one_clear_line(kwargs, match):
    grid = {"gates": "se", "backbones": "cnn", "data": "cifar10", **kwargs}
    with pytest.raises(ValueError, match=match) as error:
        expand_grid(**grid)
    assert "\n" not in str(error.value)


@pytest.mark.parametrize(
    "args, match",
    [
        (["--gates", "nope"], "error: Unknown gate 'nope'."),
        (["--recipe", "resnet"], "error: Unknown recipe 'resnet'. Did you mean 'resnet-cifar'"),
        (["--shard", "3/2"], "error: Shard spec '3/2' is out of range"),
    ],
)
def test_the_command_says_what_is_wrong_in_one_line(args, match, capsys, tmp_path):
    assert cli.main(["--backbones", "cnn", "--out", str(tmp_path), *args]) == 2
    err = capsys.readouterr().err
    assert err.startswith(match) and err.count("\n") == 1


# -------------------------------------------------------------------- order, shards, budget


def test_rounds_fill_every_model_before_the_next_run_and_shards_partition_them():
    models = [["cnn", "cnn_se"], ["resnet20", "resnet20_se"]]
    plan = plan_rounds(3, [1, 1], models)
    assert [(k, s, m, r) for k, s, m, r in plan][:5] == [
        (0, 0, "cnn", [0]), (0, 0, "cnn_se", [0]), (0, 1, "resnet20", [0]),
        (0, 1, "resnet20_se", [0]), (1, 0, "cnn", [1]),
    ]  # fmt: skip
    shards = [plan_rounds(3, [1, 1], models, f"{i}/3") for i in (1, 2, 3)]
    assert sorted(g for s in shards for g in s) == sorted(plan)
    grouped = plan_rounds(3, [2, 2], models)  # groups of two runs: rounds of two runs
    assert [r for _, _, m, r in grouped if m == "cnn"] == [[0, 1], [2]]


@pytest.fixture
def fake_protocol(monkeypatch):
    """The protocol replaced: each run 'takes' 1 s of a fake clock and writes a record."""
    clock = {"now": 0.0, "trained": []}
    monkeypatch.setattr(run_module, "time", types.SimpleNamespace(
        monotonic=lambda: clock["now"], perf_counter=time.perf_counter))  # fmt: skip

    def run_protocol(specs, settings, folder, *, data, groups, time_budget, **kw):
        sid, start = settings.settings_id(data.fingerprint()), clock["now"]
        for model, runs in groups:
            if time_budget is not None and clock["now"] - start + len(runs) > time_budget:
                return
            for r in runs:
                rec = {"settings_id": sid, "model": model, "run": r, "test_accuracy": 0.5}
                files.write_json(record_path(folder, sid, model, r), rec)
                clock["trained"].append((folder, model, r))
            clock["now"] += len(runs)

    monkeypatch.setattr(run_module, "run_protocol", run_protocol)
    return clock


def _counts(out):
    return {
        (s, r["model"]): sum(q["model"] == r["model"] for q in recs)
        for s, recs in load_leaderboard(out).items()
        for r in recs
    }


def test_filling_stays_even_under_a_time_budget(npz, tmp_path, fake_protocol):
    grid = expand_grid("se,eca", "cnn", "a,b", runs=3, data_dirs={"a": npz, "b": npz},
                       settings=SETTINGS)  # fmt: skip
    out, lines = tmp_path / "out", []
    done = run_leaderboard(grid, out, time_budget=7.5, log=lines.append)
    counts = _counts(out)
    assert sum(len(v) for v in done.values()) == sum(counts.values()) == 7
    assert len(counts) == 6 and max(counts.values()) - min(counts.values()) <= 1
    assert "time budget spent; 11 group(s) left" in lines[-1]
    run_leaderboard(grid, out, time_budget=100, log=None)  # a rerun continues
    assert set(_counts(out).values()) == {3} and len(fake_protocol["trained"]) == 18


def test_shards_share_the_folder_and_train_each_run_once(npz, tmp_path, fake_protocol, monkeypatch):
    grid = expand_grid("se", "cnn", "a,b", runs=2, data_dirs={"a": npz, "b": npz},
                       settings=SETTINGS)  # fmt: skip
    monkeypatch.setenv("JOB_COMPLETION_INDEX", "1")  # a Kubernetes Indexed Job's second pod
    monkeypatch.setenv("JOB_COMPLETIONS", "2")
    lines = []
    run_leaderboard(grid, tmp_path, shard="auto", log=lines.append)
    assert lines[0].startswith("shard 2/2 from JOB_COMPLETION_INDEX=1")
    assert len(fake_protocol["trained"]) == 4
    for shard in ("1/2", "2/2"):
        run_leaderboard(grid, tmp_path, shard=shard, log=None)
    assert len(fake_protocol["trained"]) == len(set(fake_protocol["trained"])) == 8


# ------------------------------------------------------------ a kill, the rerun, the report


def _close(a, b, where):
    """Equal, numbers within float tolerance (in lists and dicts too)."""
    if isinstance(a, dict) and isinstance(b, dict):
        assert a.keys() == b.keys(), where
        for k in a:
            _close(a[k], b[k], f"{where}.{k}")
    elif isinstance(a, list) and isinstance(b, list):
        assert len(a) == len(b), where
        for i, (x, y) in enumerate(zip(a, b)):
            _close(x, y, f"{where}[{i}]")
    elif isinstance(a, float) and isinstance(b, float):
        assert a == pytest.approx(b, rel=1e-4, abs=1e-6), where
    else:
        assert a == b, where


def _comparable(rec):
    return {k: v for k, v in rec.items() if k not in TIMING_KEYS | {"environment"}}


def test_a_killed_leaderboard_resumes_to_the_same_records_and_report(npz, tmp_path, capsys):
    sets = [f"{k}={json.dumps(v)}" for k, v in SETTINGS.items()]
    args = ["--gates", "se", "--backbones", "cnn", "--data", "tiny", "--runs", "1",
            "--data-dir", f"tiny={npz}", *[a for s in sets for a in ("--set", s)],
            "--progress-every", "0", "--quiet"]  # fmt: skip
    killed, reference = tmp_path / "killed", tmp_path / "reference"
    env = dict(os.environ, TF_CPP_MIN_LOG_LEVEL="3", PYTHONPATH=str(SRC))
    proc = subprocess.Popen(
        [sys.executable, "-m", "keras_attn", "leaderboard", *args, "--out", str(killed)],
        env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
    )  # fmt: skip
    try:  # the uninterrupted leaderboard trains here meanwhile
        grid = expand_grid("se", "cnn", "tiny", runs=1, data_dirs={"tiny": npz}, settings=SETTINGS)
        clean = run_leaderboard(grid, reference, log=None, progress_every=0)["cnn-tiny-study"]
        deadline = time.monotonic() + 240
        while not list(killed.glob("*/records/*/*/run-*.json")):
            assert proc.poll() is None, "the leaderboard ended before its first record"
            assert time.monotonic() < deadline, "no record within 240 s"
            time.sleep(0.02)
        proc.send_signal(signal.SIGKILL)
    finally:
        proc.kill()
        proc.wait()
    assert proc.returncode == -signal.SIGKILL
    assert len(list(killed.glob("*/records/*/*/run-*.json"))) == 1

    assert cli.main([*args, "--out", str(killed)]) == 0  # the rerun, and the report
    assert "wrote: " in capsys.readouterr().out
    resumed = load_leaderboard(killed)["cnn-tiny-study"]
    assert [(r["model"], r["run"]) for r in resumed] == [("cnn", 0), ("cnn_se", 0)]
    for got, want in zip(resumed, clean):  # within float tolerance: the reference trained in
        _close(_comparable(got), _comparable(want), "record")  # this process, its threads set
        # by whatever ran here before

    names = ("leaderboard.md", "leaderboard.csv", "leaderboard.png")
    first = {n: (killed / n).read_bytes() for n in names}
    for n in names:
        (killed / n).unlink()
    assert cli.main(["--report-only", "--out", str(killed), "--quiet"]) == 0
    assert {n: (killed / n).read_bytes() for n in names} == first
    [row] = list(csv_rows(first["leaderboard.csv"]))
    gain = resumed[1]["test_accuracy"] - resumed[0]["test_accuracy"]
    assert (row["gate"], row["pairs"]) == ("se", "1") and float(row["iqm_gain"]) == gain
    assert "### `cnn-tiny-study`" in first["leaderboard.md"].decode()


def csv_rows(data):
    import csv
    import io

    return csv.DictReader(io.StringIO(data.decode()))


def _records(setting, gains, rng):
    """Records of one setting: a baseline and gates whose runs are shifted by ``gains``."""
    recs = []
    for gate, shift in {None: 0.0, **gains}.items():
        for run in range(5):
            accuracy = round(0.6 + shift + rng.normal(0, 0.01), 4)
            recs.append({
                "settings_id": setting[:4], "model": "cnn" + (f"_{gate}" if gate else ""),
                "run": run, "seed": run, "test_accuracy": accuracy,
                "model_config": {"attention": [gate] if gate else []},
                "trainable_params": 1000 + (len(gate) * 10 if gate else 0),
                "epoch_seconds": [2.0, 1.0 + shift], "settings": {"runs": 5},
            })  # fmt: skip
    return recs


def test_the_report_across_settings_regenerates_byte_for_byte(tmp_path):
    rng = np.random.default_rng(0)
    by_setting = {
        "cnn-a-study": _records("cnn-a-study", {"se": 0.02, "eca": -0.01}, rng),
        "cnn-b-study": _records("cnn-b-study", {"se": 0.03, "eca": 0.0}, rng),
    }
    for setting, recs in by_setting.items():
        for r in recs:
            files.write_json(
                record_path(tmp_path / setting, r["settings_id"], r["model"], r["run"]), r
            )
    first = write_leaderboard(tmp_path)
    data = {k: files.read_bytes(p) for k, p in first.items()}
    assert {k: files.read_bytes(p) for k, p in write_leaderboard(tmp_path).items()} == data
    rows = {r["gate"]: r for r in report.summarize_gates(load_leaderboard(tmp_path))}
    assert list(rows) == ["se", "eca"]  # best IQM gain first
    gains = [
        np.array([g["test_accuracy"] - b["test_accuracy"] for g, b in
                  zip([r for r in recs if r["model"] == "cnn_se"], recs[:5])])
        for recs in by_setting.values()
    ]  # fmt: skip
    assert rows["se"]["iqm_gain"] == pytest.approx(report.interquartile_mean(gains))
    assert rows["se"]["iqm_ci95_low"] > 0 and rows["se"]["prob_improvement"] > 0.9
    assert rows["se"]["extra_params"] == "cnn +20" and rows["se"]["settings"] == 2
    md = data["markdown"].decode()
    assert "| `se` | 2 | 10 | " in md and "### `cnn-b-study`" in md
