"""Load an export, any format, with that format's own runtime; and read its model card."""

from __future__ import annotations

import json
import warnings
import zipfile
from pathlib import Path

import keras

import keras_attn.backbone  # noqa: F401 - registers keras_attn's classes, which .keras files name
from keras_attn.export.card import CARD_FILE
from keras_attn.export.formats import FILES, FORMATS, import_or_explain

__all__ = ["LOAD_FORMATS", "load", "load_card"]

LOAD_FORMATS = ("auto", *FORMATS)
_SUFFIXES = {".keras": "keras", ".onnx": "onnx", ".tflite": "tflite"}
_WHAT = {
    "keras": "a .keras file",
    "saved_model": "a SavedModel",
    "onnx": "an ONNX model",
    "tflite": "a TFLite model",
}
_EXPECTED = (
    "an export folder (holding model.keras, saved_model/, model.onnx, model.tflite and "
    "model.json, as written by keras-attn export or keras_attn.export.export_model), a .keras "
    "file, an .onnx or .tflite file, or a TensorFlow SavedModel folder (holding saved_model.pb)"
)


def load(path, format="auto", **kwargs):
    """Load an exported model: the export folder or one of its files, any format.

    Each format is loaded with its own runtime: ``.keras`` with Keras (any
    backend, after ``import keras_attn``), the SavedModel with
    ``tf.saved_model.load``, ONNX with ``onnxruntime``, TFLite with the LiteRT
    interpreter (``ai_edge_litert``, else ``tf.lite``). `keras_attn.predict.predict`
    runs any of them.

    Args:
        path: str or Path. An export folder (written by `export_model`), a
            ``.keras``, ``.onnx`` or ``.tflite`` file, or a SavedModel folder.
        format: str, default ``"auto"``. For an export folder, which artifact to
            load: ``"auto"`` (the first present of ``keras``, ``saved_model``,
            ``onnx``, ``tflite``) or one of them. For a file or a SavedModel
            folder it must agree with what ``path`` is (or be ``"auto"``).
        **kwargs: passed to ``keras.saving.load_model`` (``.keras`` only), e.g.
            ``custom_objects``.

    Returns:
        A ``keras.Model``, the object ``tf.saved_model.load`` returns (call
        ``obj.serve(uint8_images)``; keep a reference to it while you use it), an
        ``onnxruntime.InferenceSession`` or a TFLite ``Interpreter``.

    Raises:
        FileNotFoundError: ``path`` does not exist.
        ValueError: ``path`` is not an export, the requested format is not
            there, or a ``.keras`` file needs classes of a package that is not
            imported (the message names them).
        ImportError: the format's runtime is not installed (the message says
            what to install).

    Example:
    >>> import tempfile, keras_attn
    >>> from keras_attn.export import export_model
    >>> model = keras_attn.build("cnn", blocks=[4], dense_units=4, input_shape=(8, 8, 3))
    >>> folder = tempfile.mkdtemp()
    >>> _ = export_model(model, folder, formats=["keras"], verify=False)
    >>> loaded = load(folder)
    >>> type(loaded).__name__, loaded.output_shape
    ('AttentionCNN', (None, 10))
    """
    if format not in LOAD_FORMATS:
        raise ValueError(f"`format` must be one of {LOAD_FORMATS}, got {format!r}.")
    path = Path(path)
    if not path.exists():
        raise FileNotFoundError(f"No such file or folder: {path}. Expected {_EXPECTED}.")
    if path.is_file():
        kind = _SUFFIXES.get(path.suffix)
        if kind is None:
            raise ValueError(f"{path} is not a model export. Expected {_EXPECTED}.")
        if format not in ("auto", kind):
            raise ValueError(f"{path} is {_WHAT[kind]}, not {_WHAT[format]} (format={format!r}).")
        return _LOADERS[kind](path, **kwargs)
    if (path / "saved_model.pb").exists():
        if format not in ("auto", "saved_model"):
            raise ValueError(
                f"{path} is a SavedModel folder; the other files of an export sit beside it "
                f"({path.parent / FILES[format]})."
            )
        return _load_saved_model(path)
    present = [f for f in FORMATS if _present(path, f)]
    wanted = present[:1] if format == "auto" else [format]
    if wanted and wanted[0] in present:
        return _LOADERS[wanted[0]](path / FILES[wanted[0]], **kwargs)
    if present:
        have = ", ".join(FILES[f] for f in present)
        raise ValueError(f"{path} has no {format!r} artifact (it has only {have}).")
    found = sorted(p.name for p in path.iterdir())[:8]
    raise ValueError(
        f"{path} is not a model export: expected {_EXPECTED}. It holds: "
        f"{', '.join(found) if found else 'nothing'}."
    )


def load_card(path):
    """The model card (``model.json``) of an export.

    Args:
        path: str or Path, the export folder, or one of its files (``model.keras``,
            ``saved_model``, ``model.onnx``, ``model.tflite``, ``model.json``).

    Returns:
        dict, or None when there is no card (e.g. a bare ``.keras`` file).

    Example:
    >>> import tempfile, keras_attn
    >>> from keras_attn.export import export_model
    >>> model = keras_attn.build("cnn", blocks=[4], dense_units=4, input_shape=(8, 8, 3),
    ...                          num_classes=2)
    >>> folder = tempfile.mkdtemp()
    >>> _ = export_model(model, folder, class_names=["cat", "dog"], formats="keras")
    >>> load_card(f"{folder}/model.keras")["class_names"]
    ['cat', 'dog']
    """
    path = Path(path)
    candidates = [path] if path.name == CARD_FILE else [path / CARD_FILE, path.parent / CARD_FILE]
    for candidate in candidates:
        if candidate.is_file():
            return json.loads(candidate.read_text())
    return None


def _present(folder, fmt):
    target = folder / FILES[fmt]
    return (target / "saved_model.pb").exists() if fmt == "saved_model" else target.is_file()


def _registered_names(config):
    """Every ``(registered_name, module)`` a .keras config refers to."""
    found = []
    if isinstance(config, dict):
        name = config.get("registered_name")
        if isinstance(name, str) and "class_name" in config:
            found.append((name, config.get("module")))
        for value in config.values():
            found.extend(_registered_names(value))
    elif isinstance(config, list):
        for value in config:
            found.extend(_registered_names(value))
    return found


def _missing_classes(path, custom_objects):
    """Registered classes a .keras file needs that this process does not know."""
    try:
        with zipfile.ZipFile(path) as archive:
            config = json.loads(archive.read("config.json"))
    except (zipfile.BadZipFile, KeyError, json.JSONDecodeError) as err:
        raise ValueError(
            f"{path} is not a valid .keras file (a zip archive with config.json): {err}. "
            f"Expected {_EXPECTED}."
        ) from err
    known = set(keras.saving.get_custom_objects()) | set(custom_objects or {})
    missing = []
    for name, module in _registered_names(config):
        if ">" not in name:  # built-in Keras objects are registered without a package
            continue
        if name in known or keras.saving.get_registered_object(name) is not None:
            continue
        if (name, module) not in missing:
            missing.append((name, module))
    return missing


def _load_keras_file(path, **kwargs):
    missing = _missing_classes(path, kwargs.get("custom_objects"))
    if missing:
        names = ", ".join(
            f"{n!r}" + (f" (defined in module {m!r})" if m else "") for n, m in missing
        )
        packages = sorted({n.split(">", 1)[0] for n, _ in missing})
        raise ValueError(
            f"{path} uses layers registered by another package: {names}, which this process "
            f"does not know. Import the package that defines them before loading (e.g. "
            f"`import {packages[0]}`), or pass custom_objects={{name: class}}. keras_attn "
            "registers its own classes as 'keras_attn>ClassName'."
        )
    try:
        return keras.saving.load_model(path, **kwargs)
    except TypeError as err:
        if "Could not locate" not in str(err):
            raise
        raise ValueError(
            f"{path} refers to a class this process cannot find: {str(err)[:300]}... Import the "
            "package that defines it before loading, or pass custom_objects."
        ) from err


def _load_saved_model(path, **kwargs):
    tf = import_or_explain("tensorflow", "Loading a TensorFlow SavedModel")
    return tf.saved_model.load(str(path))


def _load_onnx(path, **kwargs):
    ort = import_or_explain("onnxruntime", "Loading an ONNX model")
    return ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])


def _load_tflite(path, **kwargs):
    try:
        litert = import_or_explain("ai_edge_litert.interpreter", "", "ai-edge-litert")
        return litert.Interpreter(model_path=str(path))
    except ImportError:
        pass
    try:
        tf = import_or_explain("tensorflow", "")
    except ImportError:
        raise ImportError(
            "Loading a TFLite model needs the LiteRT interpreter: pip install ai-edge-litert "
            "(or tensorflow)"
        ) from None
    with warnings.catch_warnings():  # tf.lite.Interpreter warns that it is deprecated
        warnings.simplefilter("ignore", UserWarning)
        return tf.lite.Interpreter(model_path=str(path))


_LOADERS = {
    "keras": _load_keras_file,
    "saved_model": _load_saved_model,
    "onnx": _load_onnx,
    "tflite": _load_tflite,
}
