"""A search's results: the best trials, their table and CSV, the command that checks the best."""

from __future__ import annotations

import csv
import dataclasses
import io
import json
import re
import shlex
from pathlib import Path

import keras

from keras_attn import _files as files
from keras_attn._checks import check_int
from keras_attn.backbone import count_trainable_params
from keras_attn.protocol.settings import POLICIES
from keras_attn.protocol.training import check_mixed_precision
from keras_attn.tuning.backbones import list_backbones
from keras_attn.tuning.presets import OBJECTIVE
from keras_attn.tuning.project import read_record, read_trials
from keras_attn.zoo import build as build_model

__all__ = [
    "format_trials",
    "protocol_command",
    "protocol_data_args",
    "top_trials",
    "write_results",
]

# (title, row key) of the table's columns.
_COLUMNS = (
    ("rank", "rank"),
    ("trial # (KerasTuner log)", "trial_number"),
    ("val accuracy", "val_accuracy"),
    ("trainable params", "trainable_params"),
    ("epochs", "epochs"),
    ("lr", "learning_rate"),
    ("sites", "sites"),
    ("gate", "gate"),
    ("position", "attention_position"),
    ("ECA", "eca"),
    ("AE filters", "filters"),
    ("final kernel", "final_kernel"),
    ("activation", "activation"),
)
_NUMERIC = ("rank", "val_accuracy", "trainable_params", "epochs", "learning_rate", "final_kernel")
# The CSV's columns: its first ones as they always were, the KerasTuner number last.
_CSV_FIELDS = (
    "rank",
    "trial_id",
    *(key for _, key in _COLUMNS[2:]),
    "placement",
    "config",
    "trial_number",
)
_AE_KEYS = ("filters", "final_kernel", "activation")
_NUMBERING = (
    "Trial numbers are KerasTuner's, as its log prints them (`Running Trial #N`, from 1); "
    "the files of trial #N are in `trial_<N-1>` (zero-padded: `trial_id` in top_trials.csv "
    "and best_trial.json)."
)


def _trial_epochs(trial, record):
    values = trial.hyperparameters.values
    return int(values.get("tuner/epochs", record["training"]["epochs"]))


def _row(trial, hypermodel, record, project):
    """The table row of ``trial``, and the key that says which (config, lr) it trained."""
    hp_values = {
        key: v for key, v in trial.hyperparameters.values.items() if not key.startswith("tuner/")
    }
    values = hypermodel.values(hp_values)
    name = re.sub(r"[^A-Za-z0-9_]", "_", f"{project}_trial_{trial.trial_id}")
    config = hypermodel.model_config(hp_values, name=name)
    key = json.dumps({**config, "name": None, "lr": values["learning_rate"]}, sort_keys=True)
    ae = config["conv_ae"] if values["gate"] == "conv_ae" else dict.fromkeys(_AE_KEYS)
    row = {
        "trial_id": trial.trial_id,
        # KerasTuner names trial ids after the number of trials before it, and its log
        # numbers that trial len(trials) once it is added: id + 1.
        "trial_number": int(trial.trial_id) + 1,
        "val_accuracy": float(trial.score),
        "epochs": _trial_epochs(trial, record),
        "learning_rate": values["learning_rate"],
        "placement": values["sites"],
        "sites": config["sites"],
        "gate": values["gate"],
        "attention_position": values["attention_position"],
        "eca": values["eca"],
        "filters": ae["filters"],
        "final_kernel": ae["final_kernel"],
        "activation": ae["activation"],
        "hyperparameters": hp_values,
        "config": config,
    }
    return row, key


def top_trials(project_dir, hypermodel, k=5):
    """The ``k`` best finished trials, one per distinct (config, learning rate), best first.

    Hyperband trains promising configs again for more epochs under new trial
    ids; only each config's best trial is listed.

    Args:
        project_dir: the project folder.
        hypermodel: the `ConvAutoencoderHyperModel` of the search.
        k: int >= 1, default 5.

    Returns:
        list of dicts: ``rank``, ``trial_id`` (KerasTuner's id: the folder
        ``trial_<id>``), ``trial_number`` (the number KerasTuner's log gives
        the trial: id + 1), ``val_accuracy``, ``trainable_params``,
        ``epochs``, ``learning_rate``, ``placement``, ``sites``, ``gate``,
        ``attention_position``, ``eca``, ``filters``, ``final_kernel``,
        ``activation`` (the last three ``None`` for a gate other than the
        conv-AE), ``hyperparameters`` and ``config`` (the complete model
        config).

    Example:
    >>> import tempfile, numpy as np
    >>> from keras_attn.tuning import ConvAutoencoderHyperModel, search
    >>> hm = ConvAutoencoderHyperModel({"blocks": [4], "dense_units": 8}, input_shape=(8, 8, 3),
    ...                                space={"sites": {"all": [1, 2]}, "max_depth": 1,
    ...                                       "learning_rate": [0.1]})
    >>> x = np.zeros((4, 8, 8, 3), "uint8"); y = np.array([0, 1, 2, 3])
    >>> tuner = search(hm, x, y, x, y, tuner="random", max_trials=1, epochs=1, verbose=0,
    ...                directory=tempfile.mkdtemp(), log=None)
    >>> rows = top_trials(tuner.project_dir, hm)
    >>> [(r["rank"], r["trial_number"], r["learning_rate"]) for r in rows]
    [(1, 1, 0.1)]
    """
    k = check_int("k", k, 1)
    record = read_record(project_dir)
    done = [t for t in read_trials(project_dir) if t.status == "COMPLETED" and t.score is not None]
    done.sort(key=lambda t: (-t.score, -_trial_epochs(t, record), t.trial_id))
    project = Path(project_dir).name
    rows, seen = [], set()
    for trial in done:
        row, key = _row(trial, hypermodel, record, project)
        if key in seen:
            continue
        seen.add(key)
        model = build_model(row["config"])
        row = {"rank": len(rows) + 1, **row, "trainable_params": count_trainable_params(model)}
        del model
        rows.append(row)
        if len(rows) == k:
            break
    keras.backend.clear_session()
    return rows


def _cell(key, row):
    v = row.get(key, "conv_ae" if key == "gate" else None)
    if v is None:  # not a choice of this trial (another gate's, or no position to choose)
        return "-"
    if key == "val_accuracy":
        return f"{v:.4f}"
    if key == "trainable_params":
        return f"{v:,}"
    if key == "sites":
        return f"{','.join(map(str, v))} ({row['placement']})"
    if key == "filters":
        return "-".join(map(str, v))
    if key == "eca":
        return "yes" if v else "no"
    if key == "learning_rate":
        return f"{v:g}"
    return str(v)


def format_trials(rows):
    """The rows of `top_trials` as a Markdown table.

    Trials are numbered as KerasTuner's log numbers them (from 1), which the
    header says.

    Args:
        rows: list of dicts from `top_trials`.

    Returns:
        str, one header line, one rule and one line per row.

    Example:
    >>> row = {"rank": 1, "trial_number": 3, "val_accuracy": 0.61, "trainable_params": 1234,
    ...        "epochs": 10, "learning_rate": 0.1, "sites": [1, 2], "placement": "block1",
    ...        "attention_position": "post_norm", "eca": True, "filters": [12, 24],
    ...        "final_kernel": 3, "activation": "relu"}
    >>> print(format_trials([row]))
    | rank | trial # (KerasTuner log) | val accuracy | trainable params | epochs | lr | sites | gate | position | ECA | AE filters | final kernel | activation |
    |---:|---|---:|---:|---:|---:|---|---|---|---|---|---:|---|
    | 1 | 3 | 0.6100 | 1,234 | 10 | 0.1 | 1,2 (block1) | conv_ae | post_norm | yes | 12-24 | 3 | relu |
    """  # noqa: E501
    header = "| " + " | ".join(title for title, _ in _COLUMNS) + " |"
    rule = "|" + "|".join("---:" if key in _NUMERIC else "---" for _, key in _COLUMNS) + "|"
    lines = [header, rule]
    for row in rows:
        lines.append("| " + " | ".join(_cell(key, row) for _, key in _COLUMNS) + " |")
    return "\n".join(lines)


def protocol_data_args(data):
    """The data flags that make ``keras-attn protocol`` train on a search's data.

    The same source and train / validation split; not the search's
    ``train_limit`` / ``val_limit`` (the protocol compares on the whole split)
    nor ``--download`` (the data is there by then).

    Args:
        data: the search's `keras_attn.data.DataSettings`.

    Returns:
        list of str.

    Example:
    >>> from keras_attn.data import DataSettings
    >>> protocol_data_args(DataSettings(data="/data/c10", val_size=1000, train_limit=2000))
    ['--data-dir', '/data/c10', '--val-size', '1000']
    """
    return dataclasses.replace(
        data, train_limit=None, val_limit=None, test_limit=None, download=False
    ).flags()


def protocol_command(
    best_config_path,
    *,
    learning_rate=None,
    epochs=None,
    batch_size=None,
    runs=16,
    extra_args=(),
    baseline="cnn",
):
    """The one-line command that runs the multi-seed protocol on a config against a baseline.

    Args:
        best_config_path: path of the config JSON.
        baseline: str, default ``"cnn"``; the model it is compared with (the
            search's backbone without gates).
        learning_rate: float or ``None`` (``--lr``; the protocol's default otherwise).
        epochs: int or ``None`` (``--epochs``).
        batch_size: int or ``None`` (``--batch-size``).
        runs: int, default 16 (the study's).
        extra_args: further arguments (e.g. the data flags of the search,
            `protocol_data_args`).

    Returns:
        str, a shell command.

    Example:
    >>> protocol_command("tuning/x/best_config.json", learning_rate=0.03)
    'keras-attn protocol --models tuning/x/best_config.json,cnn --runs 16 --lr 0.03'
    """
    args = [
        "keras-attn",
        "protocol",
        "--models",
        f"{best_config_path},{baseline}",
        "--runs",
        str(runs),
    ]
    if epochs is not None:
        args += ["--epochs", str(epochs)]
    if learning_rate is not None:
        args += ["--lr", f"{learning_rate:g}"]
    if batch_size is not None:
        args += ["--batch-size", str(batch_size)]
    args += [str(a) for a in extra_args]
    return " ".join(shlex.quote(a) for a in args)


def _csv_text(rows):
    buf = io.StringIO()
    writer = csv.DictWriter(buf, fieldnames=_CSV_FIELDS, lineterminator="\n")
    writer.writeheader()
    for row in rows:
        out = {key: row[key] for key in _CSV_FIELDS}
        out["sites"] = " ".join(map(str, row["sites"]))
        out["filters"] = " ".join(map(str, row["filters"] or []))
        out["config"] = json.dumps(row["config"], sort_keys=True)
        writer.writerow(out)
    return buf.getvalue()


def _baseline(base_config, project_dir):
    """The protocol's baseline: the backbone by name where it is a registered one, else its
    config, written as ``base_config.json`` in the project folder."""
    name = base_config.get("name")
    if name in list_backbones():
        return name
    path = Path(project_dir) / "base_config.json"
    files.write_json(path, base_config, indent=2)
    return str(path)


def write_results(project_dir, hypermodel, k=5, *, protocol_args=()):
    """Write the top-k table, the best config and the protocol command into the project.

    Files (in ``project_dir``): ``best_config.json`` (a complete config:
    ``keras_attn.build(json.load(f))`` builds it unchanged), ``best_trial.json``
    (its score, learning rate, epochs, hyperparameters and the protocol
    command), ``top_trials.md`` and ``top_trials.csv``.

    Args:
        project_dir: the project folder.
        hypermodel: the `ConvAutoencoderHyperModel` of the search.
        k: int, default 5; rows of the table.
        protocol_args: extra arguments for the protocol command (the data
            flags: `protocol_data_args`).

    Returns:
        dict: ``rows`` (from `top_trials`), ``table`` (Markdown), ``command``,
        ``baseline`` (what the command compares with: the backbone's name, or
        the path of ``base_config.json``) and the paths ``best_config``, ``best_trial``, ``markdown``, ``csv``.

    Raises:
        RuntimeError: no trial has finished yet.

    Example:
    >>> import tempfile, numpy as np
    >>> from keras_attn.tuning import ConvAutoencoderHyperModel, search
    >>> hm = ConvAutoencoderHyperModel({"blocks": [4], "dense_units": 8}, input_shape=(8, 8, 3),
    ...                                space={"sites": {"all": [1, 2]}, "max_depth": 1,
    ...                                       "learning_rate": [0.1]})
    >>> x = np.zeros((4, 8, 8, 3), "uint8"); y = np.array([0, 1, 2, 3])
    >>> tuner = search(hm, x, y, x, y, tuner="random", max_trials=1, epochs=1, verbose=0,
    ...                directory=tempfile.mkdtemp(), log=None)
    >>> report = write_results(tuner.project_dir, hm, protocol_args=["--val-size", "2"])
    >>> print(report["command"])  # doctest: +ELLIPSIS
    keras-attn protocol --models .../best_config.json,cnn --runs 16 --lr 0.1 --batch-size 128 --val-size 2
    """  # noqa: E501
    project_dir = Path(project_dir)
    rows = top_trials(project_dir, hypermodel, k)
    if not rows:
        raise RuntimeError(f"No finished trial in {project_dir}: nothing to report yet.")
    record = read_record(project_dir)
    best = rows[0]
    paths = {
        "best_config": project_dir / "best_config.json",
        "best_trial": project_dir / "best_trial.json",
        "markdown": project_dir / "top_trials.md",
        "csv": project_dir / "top_trials.csv",
    }
    extra = list(protocol_args)
    policy = check_mixed_precision(hypermodel.mixed_precision)
    if policy:  # the protocol trains the config as it was tuned
        extra += ["--precision", {v: k for k, v in POLICIES.items()}[policy]]
    batch_size = record["training"]["batch_size"]
    baseline = _baseline(hypermodel.base_config, project_dir)
    command = protocol_command(
        paths["best_config"],
        learning_rate=best["learning_rate"],
        batch_size=batch_size,
        extra_args=extra,
        baseline=baseline,
    )
    files.write_json(paths["best_config"], best["config"], indent=2)
    kept = ("trial_id", "trial_number", "val_accuracy", "trainable_params", "epochs")
    best_trial = {key: best[key] for key in (*kept, "learning_rate", "hyperparameters")}
    best_trial.update(
        batch_size=batch_size,
        tuner=record["tuner"],
        config_file=paths["best_config"].name,
        protocol_command=command,
    )
    files.write_json(paths["best_trial"], best_trial, indent=2)
    table = format_trials(rows)
    base = build_model(hypermodel.base_config)
    base_params = count_trainable_params(base)
    del base
    keras.backend.clear_session()
    markdown = (
        f"# Top {len(rows)} trials of {project_dir.name} ({record['tuner']['kind']} search, "
        f"objective {OBJECTIVE})\n\n{table}\n\n{_NUMBERING}\n\n"
        f"The base network without gates (`{hypermodel.base_config['name']}`) has "
        f"{base_params:,} trainable parameters. A single trial's accuracy is not evidence: "
        f"compare the best config with `{baseline}` over many seeds:\n\n    {command}\n"
    )
    files.write_atomic(str(paths["markdown"]), markdown.encode())
    files.write_atomic(str(paths["csv"]), _csv_text(rows).encode())
    return {
        "rows": rows,
        "table": table,
        "command": command,
        "baseline": baseline,
        **{k: str(v) for k, v in paths.items()},
    }
