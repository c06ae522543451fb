"""Export the run the protocol's records name best (`keras_attn.protocol.best_run`)."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import tempfile
from pathlib import Path

import keras

from keras_attn import _files as files
from keras_attn.export.formats import check_formats, install_hint
from keras_attn.export.loading import load
from keras_attn.export.writer import export_model

__all__ = ["export_best", "exportable_models"]


def export_best(results_dir, model_name, out_root="saved_models", overwrite=False, **kwargs):
    """Export the best run of ``model_name`` in a protocol results folder.

    Asks `keras_attn.protocol.best_run` for the best run's record and weights
    (the run with the best validation accuracy, never chosen on test accuracy),
    rebuilds the model and calls `export_model` into ``out_root/model_name``
    with the record in the card. On a backend other than TensorFlow, formats
    other than ``.keras`` are written by a TensorFlow subprocess; without
    TensorFlow installed the default is the ``.keras`` file alone.

    Args:
        results_dir: str or Path, a protocol output folder (e.g. ``results/ae``).
        model_name: str, a model name trained there (e.g. ``"cnn_conv_ae"``).
        out_root: str or Path, default ``"saved_models"``. The export goes to
            ``out_root/model_name``.
        overwrite: bool, default False. Replace an existing export.
        **kwargs: passed to `export_model` (``class_names``, ``formats``, ``verify``).

    Returns:
        dict, the model card.

    Raises:
        ValueError: no records of ``model_name`` with weights in ``results_dir``,
            or the best run's weights file is missing (e.g. published records
            copied without their ``weights/`` folder).
        ImportError: a format asked for needs a package that is not installed.

    Example (a protocol folder with one run, as ``keras-attn protocol`` writes it):
    >>> import json, os, tempfile, keras_attn
    >>> results = tempfile.mkdtemp()
    >>> for part in ("records", "weights"):
    ...     os.makedirs(os.path.join(results, part, "s1", "cnn"))
    >>> model = keras_attn.build("cnn", blocks=[4], dense_units=4, input_shape=(8, 8, 3))
    >>> model.save_weights(os.path.join(results, "weights/s1/cnn/run-0000.weights.h5"))
    >>> record = {"model": "cnn", "run": 0, "seed": 0, "best_val_accuracy": 0.5,
    ...           "weights": "weights/s1/cnn/run-0000.weights.h5",
    ...           "model_config": model.model_config}
    >>> with open(os.path.join(results, "records/s1/cnn/run-0000.json"), "w") as f:
    ...     json.dump(record, f)
    >>> card = export_best(results, "cnn", out_root=tempfile.mkdtemp(), formats="keras")
    >>> card["record_summary"]
    {'model': 'cnn', 'run': 0, 'seed': 0, 'best_val_accuracy': 0.5}
    """
    formats = check_formats(kwargs.pop("formats", None))
    hints = [install_hint(f) for f in formats if install_hint(f)]
    if hints:
        raise ImportError("; ".join(hints))
    if keras.backend.backend() != "tensorflow" and set(formats) != {"keras"}:
        kwargs["formats"] = list(formats)
        return _export_best_on_tensorflow(results_dir, model_name, out_root, overwrite, kwargs)
    from keras_attn.protocol import best_run

    # A str, so that messages about the folder print it as a path.
    record, weights_path = best_run(os.fspath(results_dir), model_name)
    if not files.exists(weights_path):
        raise ValueError(
            f"The best run of {model_name} in {os.fspath(results_dir)} (run {record.get('run')}, "
            f"validation accuracy {record.get('best_val_accuracy')}) has no weights: "
            f"{weights_path} is missing. Its records were copied without their weights/ "
            "folder, or the weights were deleted; export from the folder the protocol wrote."
        )
    with tempfile.TemporaryDirectory() as tmp:
        model = _model_from_weights(_local_copy(weights_path, tmp), record)
    return export_model(
        model,
        Path(out_root) / model_name,
        record=record,
        overwrite=overwrite,
        formats=formats,
        **kwargs,
    )


def exportable_models(results_dir):
    """The models of a protocol results folder, split by whether a run's weights are there.

    Only a model with the weights of a finished run in the folder can be exported
    (`export_best`); published records often come without their ``weights/``.

    Args:
        results_dir: str or Path, a protocol output folder (local or ``gs://``...).

    Returns:
        ``(with_weights, without_weights)``: two sorted lists of model names.

    Raises:
        FileNotFoundError: no such folder, or no records in it (the message names
            the folder as a plain path and the layout expected).

    Example:
    >>> import json, os, tempfile
    >>> results = tempfile.mkdtemp()
    >>> for name in ("cnn", "cnn_eca"):
    ...     os.makedirs(os.path.join(results, "records", "s1", name))
    ...     record = {"model": name, "run": 0, "best_val_accuracy": 0.5,
    ...               "weights": f"weights/s1/{name}/run-0000.weights.h5"}
    ...     with open(os.path.join(results, "records", "s1", name, "run-0000.json"), "w") as f:
    ...         json.dump(record, f)
    >>> os.makedirs(os.path.join(results, "weights", "s1", "cnn_eca"))
    >>> open(os.path.join(results, "weights/s1/cnn_eca/run-0000.weights.h5"), "w").close()
    >>> exportable_models(results)
    (['cnn_eca'], ['cnn'])
    """
    results_dir = os.fspath(results_dir)
    expected = f"{files.join(results_dir, 'records', '<settings_id>', '<model>', 'run-NNNN.json')}"
    if not files.exists(results_dir):
        raise FileNotFoundError(
            f"No such results folder: {results_dir}. Give a folder written by "
            f"keras-attn protocol (holding {expected}), or a .keras file."
        )
    paths = files.glob_paths(files.join(results_dir, "records", "*", "*", "run-*.json"))
    if not paths:
        raise FileNotFoundError(
            f"No protocol records in {results_dir}: expected {expected}, written by "
            "keras-attn protocol."
        )
    with_weights, models = set(), set()
    for path in paths:
        record = files.read_json(path)
        name = record.get("model") or path.replace("\\", "/").split("/")[-2]
        models.add(name)
        weights = record.get("weights")
        usable = weights and record.get("best_val_accuracy") is not None
        if usable and files.exists(files.join(results_dir, *weights.split("/"))):
            with_weights.add(name)
    return sorted(with_weights), sorted(models - with_weights)


def _local_copy(path, tmp_dir):
    """``path`` itself, or a local copy of a remote (``gs://``...) file."""
    path = str(path)
    if not files.remote(path):
        return Path(path)
    local = Path(tmp_dir) / path.rsplit("/", 1)[-1]
    local.write_bytes(files.read_bytes(path))
    return local


def _model_from_weights(weights_path, record):
    """A model from a protocol run's saved weights (``.keras`` or ``.weights.h5``)."""
    name = str(weights_path)
    if name.endswith(".keras"):
        return load(weights_path, format="keras")
    if name.endswith(".weights.h5"):
        config = None
        if record is not None:
            config = record.get("model_config") or record.get("config")
        if not isinstance(config, dict) or "input_shape" not in config:
            raise ValueError(
                f"{weights_path} holds weights only, and its record has no `model_config` to "
                "rebuild the architecture from."
            )
        from keras_attn.zoo import build

        model = build(config)
        model.load_weights(weights_path)
        return model
    raise ValueError(
        f"Cannot load weights from {weights_path}: expected a .keras or .weights.h5 file."
    )


def _export_best_on_tensorflow(results_dir, model_name, out_root, overwrite, kwargs):
    args = json.dumps([str(results_dir), model_name, str(out_root), overwrite, kwargs])
    code = (
        "import json, sys; from keras_attn.export import export_best; "
        "r, m, o, w, kw = json.loads(sys.argv[1]); "
        "print(json.dumps(export_best(r, m, out_root=o, overwrite=w, **kw)))"
    )
    env = {**os.environ, "KERAS_BACKEND": "tensorflow"}
    proc = subprocess.run(
        [sys.executable, "-c", code, args], env=env, capture_output=True, text=True
    )
    if proc.returncode != 0:
        raise RuntimeError(
            f"Exporting {model_name} in a TensorFlow subprocess (this process runs "
            f"{keras.backend.backend()!r}) failed:\n{proc.stderr[-3000:]}"
        )
    return json.loads(proc.stdout.strip().splitlines()[-1])
