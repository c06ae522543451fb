"""Publish one protocol run of a model as a folder to share: Keras' files, provenance, a card."""

from __future__ import annotations

import datetime
import json
import math
import os
import shutil
import tempfile

import keras

from keras_attn import _files as files
from keras_attn.pretrained.card import readme_card
from keras_attn.pretrained.folder import CARD, METADATA, WEIGHTS, sha256_of

__all__ = ["publish"]

#: How a run is chosen: the protocol's best (by validation accuracy), or the median one.
RUNS = {
    "best": "the highest validation accuracy of the variant's runs",
    "median": "the median test accuracy of the variant's runs (a typical run)",
}


def _settings_id(records, results_dir, model_name, settings_id):
    ids = sorted({r["settings_id"] for r in records if r.get("model") == model_name})
    if not ids:
        models = sorted({r.get("model") for r in records})
        raise ValueError(
            f"No records of model {model_name!r} in {results_dir}; models with records: "
            f"{', '.join(models)}."
        )
    if settings_id is None:
        if len(ids) > 1:
            raise ValueError(
                f"{results_dir} holds runs of {model_name} under several settings "
                f"({', '.join(ids)}): say which with settings_id (--settings-id)."
            )
        return ids[0]
    if settings_id not in ids:
        raise ValueError(
            f"No runs of {model_name} under settings {settings_id!r} in {results_dir}; "
            f"found {', '.join(ids)}."
        )
    return settings_id


def _median_run(results_dir, runs, model_name):
    usable = [
        r
        for r in runs
        if r.get("weights")
        and r.get("test_accuracy") is not None
        and files.exists(files.join(results_dir, *r["weights"].split("/")))
    ]
    if not usable:
        raise ValueError(
            f"None of the {len(runs)} runs of {model_name} in {results_dir} has both a test "
            "accuracy and its weights there."
        )
    usable.sort(key=lambda r: (r["test_accuracy"], r["run"]))
    record = usable[(len(usable) - 1) // 2]  # the lower median of an even count
    return record, files.join(results_dir, *record["weights"].split("/"))


def _number(x):
    return None if x is None or (isinstance(x, float) and math.isnan(x)) else float(x)


def _dataset_name(record, dataset):
    if dataset:
        return dataset
    from keras_attn.report._context import data_name

    source = (record.get("data") or {}).get("source") or {}
    return data_name(source) if source else "unknown"


def _metadata(record, row, run, dataset, sha256, config):
    from keras_attn import __version__

    data = record.get("data") or {}
    return {
        "format": 1,
        "model": record["model"],
        "gates": list(config.get("attention") or []),
        "run": record["run"],
        "seed": record.get("seed"),
        "chosen_by": RUNS[run],
        "settings_id": record["settings_id"],
        "data_fingerprint": data.get("fingerprint"),
        "dataset": _dataset_name(record, dataset),
        "class_names": data.get("class_names"),
        "input_shape": config.get("input_shape"),
        "preprocessing": record.get("preprocessing"),
        "test_accuracy": record.get("test_accuracy"),
        "best_val_accuracy": record.get("best_val_accuracy"),
        "variant": {
            "n": row["n"],
            "runs": row["runs"],
            "mean": _number(row["mean"]),
            "std": _number(row["std"]),
            "ci95": [_number(row["ci95_low"]), _number(row["ci95_high"])],
        },
        "model_config": config,
        "weights_sha256": sha256,
        "keras_attn_version": __version__,
        "keras_version": keras.__version__,
        "published_at": datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds"),
    }


def publish(
    results_dir,
    model_name,
    out_dir=None,
    run="best",
    settings_id=None,
    dataset=None,
    overwrite=False,
):
    """Publish one run of ``model_name`` from a protocol results folder as a folder to share.

    The folder holds the model as Keras writes it unzipped (``config.json``,
    ``metadata.json``, ``model.weights.h5``: ``keras.saving.load_model`` and
    Keras' Hugging Face Hub support read it), the run's provenance under
    ``metadata.json``'s ``"keras_attn"`` key (settings id, data fingerprint, this
    run's test accuracy, the variant's mean and 95 % t interval over its runs as
    `keras_attn.report.summarize` computes them, the weights' SHA-256) and a model
    card ``README.md`` (`readme_card`). It is written beside ``out_dir`` and renamed
    into place, so a crash leaves no half-written folder.

    Args:
        results_dir: str, a protocol output folder (``OUT/records/...``, ``OUT/weights/...``).
        model_name: str, a model with runs there.
        out_dir: str or None, the folder to write, default ``saved_models/<model_name>``.
        run: ``"best"`` (the protocol's `keras_attn.protocol.best_run`: highest
            validation accuracy) or ``"median"`` (the run of median test accuracy, the
            lower one of an even count).
        settings_id: str or None; needed when the folder holds several settings.
        dataset: str or None, the dataset's name for the card (a Hugging Face
            dataset id such as ``"cifar10"``); default the data's own name.
        overwrite: bool, default False. Replace an existing folder.

    Returns:
        dict, the metadata written (the ``"keras_attn"`` part).

    Raises:
        ValueError: no such model, run choice or settings id, no weights, or
            ``out_dir`` exists (without ``overwrite``).

    Example (a protocol folder with one run, as ``keras-attn protocol`` writes it):
    >>> import os, tempfile, keras_attn
    >>> results, out = tempfile.mkdtemp(), tempfile.mkdtemp()
    >>> for part in ("records", "weights"):
    ...     os.makedirs(os.path.join(results, part, "s1", "cnn_eca"))
    >>> model = keras_attn.build("cnn_eca", blocks=[4], dense_units=4, input_shape=(8, 8, 3))
    >>> model.save_weights(os.path.join(results, "weights/s1/cnn_eca/run-0000.weights.h5"))
    >>> record = {"settings_id": "s1", "model": "cnn_eca", "run": 0, "seed": 0,
    ...           "best_val_accuracy": 0.5, "test_accuracy": 0.48, "data": {"fingerprint": "ff"},
    ...           "weights": "weights/s1/cnn_eca/run-0000.weights.h5",
    ...           "model_config": model.model_config}
    >>> files.write_json(os.path.join(results, "records/s1/cnn_eca/run-0000.json"), record)
    >>> meta = publish(results, "cnn_eca", os.path.join(out, "cnn_eca"), dataset="cifar10")
    >>> meta["test_accuracy"], meta["variant"]["n"]
    (0.48, 1)
    >>> sorted(os.listdir(os.path.join(out, "cnn_eca")))
    ['README.md', 'config.json', 'metadata.json', 'model.weights.h5']
    """
    from keras_attn.report import load_records, summarize
    from keras_attn.zoo import build

    results_dir = os.fspath(results_dir)
    if run not in RUNS:
        raise ValueError(f"`run` must be one of {', '.join(RUNS)}, got {run!r}.")
    out_dir = os.fspath(out_dir or os.path.join("saved_models", model_name))
    if os.path.exists(out_dir) and not overwrite:
        raise ValueError(
            f"{out_dir} already exists: pass overwrite=True (--overwrite) to replace it."
        )
    records = load_records(results_dir)
    sid = _settings_id(records, results_dir, model_name, settings_id)
    same = [r for r in records if r["settings_id"] == sid]
    runs = [r for r in same if r["model"] == model_name]
    if run == "best":
        from keras_attn.protocol import best_run

        record, weights = best_run(results_dir, model_name, settings_id=sid)
    else:
        record, weights = _median_run(results_dir, runs, model_name)
    if not files.exists(weights):
        raise ValueError(
            f"Run {record['run']} of {model_name} in {results_dir} has no weights: {weights} is "
            "missing (records copied without their weights/ folder?)."
        )
    config = record.get("model_config")
    if not isinstance(config, dict):
        raise ValueError(f"Run {record['run']} of {model_name} has no model_config to rebuild.")
    row = next(r for r in summarize(same) if r["model"] == model_name)
    parent = os.path.dirname(os.path.abspath(out_dir))
    os.makedirs(parent, exist_ok=True)
    tmp = tempfile.mkdtemp(prefix=f".{os.path.basename(out_dir)}-", dir=parent)
    try:
        local = os.path.join(tmp, "run.weights.h5")
        with open(local, "wb") as f:
            f.write(files.read_bytes(weights))
        model = build(config)
        model.load_weights(local)
        os.remove(local)
        folder = os.path.join(tmp, "model")
        keras.saving.save_model(model, folder, zipped=False)
        assets = os.path.join(folder, "assets")
        if os.path.isdir(assets) and not os.listdir(assets):
            os.rmdir(assets)  # Keras' empty assets folder: the model has none
        meta = _metadata(
            record, row, run, dataset, sha256_of(os.path.join(folder, WEIGHTS)), config
        )
        with open(os.path.join(folder, METADATA)) as f:
            keras_meta = json.load(f)
        with open(os.path.join(folder, METADATA), "w") as f:
            json.dump({**keras_meta, "keras_attn": meta}, f, indent=1)
        with open(os.path.join(folder, CARD), "w") as f:
            f.write(readme_card(meta))
        if os.path.exists(out_dir):
            shutil.rmtree(out_dir)
        os.replace(folder, out_dir)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    return meta
