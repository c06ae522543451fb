"""A search's results (keras_attn.tuning.results).

- the table numbers trials as KerasTuner's log does (from 1), and says so in its
  header; the CSV and best_trial.json keep KerasTuner's trial id too;
- the protocol command's data flags name the search's data without its limits.
"""

import csv
import json
import re

import pytest
from tuning_helpers import FAST_SPACE, random_data, tiny

from keras_attn import tuning
from keras_attn.data import DataSettings
from keras_attn.tuning.results import format_trials


@pytest.mark.slow
def test_the_table_numbers_trials_as_kerastuners_log(tmp_path, capsys):
    x, y, xv, yv = random_data(n_train=16, n_val=16)
    tuner = tuning.search(
        tiny(FAST_SPACE),
        x,
        y,
        xv,
        yv,
        tuner="random",
        directory=tmp_path,
        project_name="numbers",
        max_trials=2,
        epochs=1,
        batch_size=16,
        verbose=1,
        log=None,
    )
    logged = [int(n) for n in re.findall(r"Search: Running Trial #(\d+)", capsys.readouterr().out)]
    assert logged == [1, 2]
    # The number KerasTuner's log gave each trial, as its oracle keeps it.
    oracle = json.loads((tmp_path / "numbers" / "oracle.json").read_text())
    numbers = oracle["display"]["trial_number"]
    assert sorted(numbers.values()) == logged

    report = tuning.write_results(tuner.project_dir, tiny(FAST_SPACE), k=2)
    rows = report["rows"]
    assert len(rows) == 2
    for row in rows:
        assert row["trial_number"] == numbers[row["trial_id"]]
    header, _, *lines = report["table"].splitlines()
    assert header.split(" | ")[1] == "trial # (KerasTuner log)"
    assert [int(line.split(" | ")[1]) for line in lines] == [r["trial_number"] for r in rows]
    md = open(report["markdown"]).read()
    assert "the files of trial #N are in `trial_<N-1>`" in md
    with open(report["csv"]) as f:
        table = list(csv.DictReader(f))
    assert [(r["trial_id"], int(r["trial_number"])) for r in table] == [
        (r["trial_id"], r["trial_number"]) for r in rows
    ]
    best = json.loads(open(report["best_trial"]).read())
    assert best["trial_id"] == rows[0]["trial_id"]
    assert best["trial_number"] == rows[0]["trial_number"]
    assert (tmp_path / "numbers" / f"trial_{best['trial_id']}").is_dir()


def test_format_trials_says_which_numbering_it_uses():
    row = {
        "rank": 1, "trial_number": 12, "val_accuracy": 0.5, "trainable_params": 1000,
        "epochs": 3, "learning_rate": 0.03, "sites": [3, 4], "placement": "block2",
        "attention_position": "post_norm", "eca": False, "filters": [8, 12], "final_kernel": 2,
        "activation": "relu",
    }  # fmt: skip
    se = {**row, "gate": "se", "eca": None, "filters": None, "final_kernel": None,
          "activation": None}  # fmt: skip
    header, rule, line, gate_line = format_trials([row, se]).splitlines()
    assert "| trial # (KerasTuner log) |" in header and "| sites | gate | position |" in header
    assert line == (
        "| 1 | 12 | 0.5000 | 1,000 | 3 | 0.03 | 3,4 (block2) | conv_ae | post_norm | no | 8-12 | 2 "
        "| relu |"
    )
    # Another gate (a gate search): the conv-AE's columns, and ECA under the ECA gate, are "-".
    assert gate_line.endswith("| 3,4 (block2) | se | post_norm | - | - | - | - |")
    assert rule.count("|") == header.count("|")


def test_protocol_data_args_are_the_search_data_without_its_limits():
    assert tuning.protocol_data_args(DataSettings()) == []
    smoke = DataSettings(
        data="/data/cifar10-jpeg",
        cache_dir="/data/cache",
        train_limit=2000,
        val_limit=500,
        download=True,
    )
    assert tuning.protocol_data_args(smoke) == [
        "--data-dir", "/data/cifar10-jpeg", "--cache-dir", "/data/cache"
    ]  # fmt: skip
    tfds = DataSettings(data="tfds:mnist", tfds_data_dir="/tfds", val_size=100, split_seed=3)
    assert tuning.protocol_data_args(tfds) == [
        "--dataset", "mnist", "--val-size", "100", "--split-seed", "3", "--tfds-dir", "/tfds"
    ]  # fmt: skip
    command = tuning.protocol_command("p/best_config.json", extra_args=["--data-dir", "a b"])
    assert command.endswith("--data-dir 'a b'")
