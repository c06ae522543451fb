"""Export trained models for serving, load them back, and feed them images.

One export folder per model (``saved_models/<name>/`` by convention)::

    model.keras      the Keras model (architecture + weights); loads on any backend,
                     in a process that imports keras_attn
    saved_model/     a TensorFlow SavedModel: signatures ``serve`` and
                     ``serving_default`` take uint8 images ``(batch, H, W, C)`` of
                     the training size and return class probabilities; loads with
                     plain ``tf.saved_model.load``, no keras_attn needed
    model.json       the model card: name, config, parameter count, the protocol
                     record it came from, class names, input and output spec,
                     library versions

`export_model` writes such a folder from an in-memory model (it does not depend
on the protocol); `export_best` exports the best run of a protocol results
folder. `load` reads any of the three entry points (the folder, the ``.keras``
file, the ``saved_model`` folder) and `load_card` the card.

Images: `load_images` decodes PNG/JPEG (and whatever else Pillow reads) to the
model's channel count (grayscale and RGBA are converted) and size. An image of
another size is, by default, center-cropped to the model's aspect ratio and
resized (bilinear), which is what a photo of a cat needs before a 32x32 model
can see it; ``resize="stretch"`` resizes without cropping and ``resize="none"``
refuses with an error. `predict` runs either format on uint8 images and
`top_k` names the best classes.

Writing the SavedModel needs the TensorFlow backend; ``.keras`` files are
portable across backends, so a model trained on JAX is saved as ``.keras`` and
exported from a TensorFlow process (``scripts/export.py`` always runs on
TensorFlow).
"""

from __future__ import annotations

import datetime
import json
import os
import shutil
import tempfile
import zipfile
from pathlib import Path

import keras
import numpy as np

from keras_attn.runtime import backend, versions

__all__ = [
    "CARD_FILE",
    "KERAS_FILE",
    "RESIZE_MODES",
    "SAVED_MODEL_DIR",
    "export_best",
    "export_model",
    "fit_image",
    "load",
    "load_card",
    "load_images",
    "predict",
    "read_image",
    "top_k",
]

KERAS_FILE = "model.keras"
SAVED_MODEL_DIR = "saved_model"
CARD_FILE = "model.json"
CARD_FORMAT = 1
SIGNATURES = ("serve", "serving_default")
#: SavedModel signature input and output names.
INPUT_NAME = "images"
OUTPUT_NAME = "output_0"
RESIZE_MODES = ("crop", "stretch", "none")
LOAD_FORMATS = ("auto", "keras", "saved_model")

_EXPECTED = (
    "an export folder (holding model.keras, saved_model/ and model.json, as written by "
    "scripts/export.py or keras_attn.export.export_model), a .keras file, or a TensorFlow "
    "SavedModel folder (holding saved_model.pb)"
)


# --------------------------------------------------------------------------- export


def _require_tensorflow(what):
    backend = keras.backend.backend()
    if backend != "tensorflow":
        raise RuntimeError(
            f"{what} needs the TensorFlow backend, but this process runs Keras on {backend!r}. "
            "Export from a process started with KERAS_BACKEND=tensorflow (scripts/export.py "
            "does this itself). .keras files are portable across backends: save the model here "
            "with model.save('model.keras') and export that file there "
            "(python scripts/export.py model.keras --out saved_models/NAME)."
        )


def _find_key(obj, key):
    """The first value stored under ``key`` anywhere in a nested dict/list, or None."""
    if isinstance(obj, dict):
        if key in obj:
            return obj[key]
        values = obj.values()
    elif isinstance(obj, (list, tuple)):
        values = obj
    else:
        return None
    for value in values:
        found = _find_key(value, key)
        if found is not None:
            return found
    return None


def _jsonable(obj):
    """``obj`` with NumPy scalars/arrays and paths turned into plain JSON values."""
    return json.loads(json.dumps(obj, default=_json_default))


def _json_default(obj):
    if isinstance(obj, np.generic):
        return obj.item()
    if isinstance(obj, np.ndarray):
        return obj.tolist()
    if isinstance(obj, Path):
        return str(obj)
    raise TypeError(f"{type(obj).__name__} is not JSON serializable: {obj!r}")


def _image_input_shape(model):
    shape = model.input_shape
    if isinstance(shape, list):
        if len(shape) != 1:
            raise ValueError(
                f"Export handles single-input image models; {model.name!r} has {len(shape)} "
                f"inputs {shape}."
            )
        shape = shape[0]
    if len(shape) != 4 or any(d is None for d in shape[1:]):
        raise ValueError(
            f"Export needs a model taking images of a fixed size (batch, height, width, "
            f"channels); {model.name!r} takes {shape}."
        )
    return tuple(int(d) for d in shape[1:])


def _class_names(class_names, record, num_classes):
    source = "argument"
    if isinstance(class_names, str):
        raise ValueError(
            f"`class_names` must be a list of names, got the string {class_names!r}; "
            "e.g. class_names.split(',')."
        )
    if class_names is None and record is not None:
        class_names = _find_key(record, "class_names")
        source = "record"
    if class_names is None:
        return [str(i) for i in range(num_classes)], "default (class indices)"
    class_names = [str(c) for c in class_names]
    if len(class_names) != num_classes:
        raise ValueError(
            f"Got {len(class_names)} class names ({source}) for a model with {num_classes} "
            f"outputs: {class_names}. Give exactly one name per output."
        )
    return class_names, source


def _record_summary(record):
    """The card's headline numbers, read from a protocol record whatever its exact layout."""
    if record is None:
        return None
    summary = {}
    for key in (
        "model",
        "run",
        "seed",
        "settings_id",
        "best_epoch",
        "best_val_accuracy",
        "test_accuracy",
    ):
        value = record.get(key)
        if value is not None and not isinstance(value, (dict, list)):
            summary[key] = value
    data = record.get("data")
    if isinstance(data, dict):
        summary["data"] = {k: data[k] for k in ("source", "counts", "fingerprint") if k in data}
    return summary


def _write_saved_model(model, path, image_shape):
    import tensorflow as tf

    archive = keras.export.ExportArchive()
    archive.track(model)

    def serve(images):
        # The model rescales 0..255 itself: the only preprocessing is the cast.
        return model(tf.cast(images, tf.float32), training=False)

    archive.add_endpoint(
        SIGNATURES[0],
        serve,
        input_signature=[tf.TensorSpec((None, *image_shape), tf.uint8, name=INPUT_NAME)],
    )
    archive.write_out(str(path), verbose=False)  # also registers "serving_default"


def _inference_copy(model):
    """``model`` without its optimizer (an export holds what inference needs, no more).

    A compiled model carries its optimizer's state (twice the weights for Adam) into both
    ``.keras`` and SavedModel; a fresh copy from the config with the same weights does not.
    """
    if getattr(model, "optimizer", None) is None:
        return model
    copy = type(model).from_config(model.get_config())
    copy.set_weights(model.get_weights())
    return copy


def _check_export(model, folder, image_shape, formats):
    """Reload what was written and compare it with ``model`` on random uint8 images."""
    rng = np.random.default_rng(0)
    images = rng.integers(0, 256, size=(4, *image_shape), dtype=np.uint8)
    expected = keras.ops.convert_to_numpy(model(images.astype("float32"), training=False))
    diffs = {}
    if "keras" in formats:
        diffs["keras"] = float(np.abs(predict(load(folder / KERAS_FILE), images) - expected).max())
    if "saved_model" in formats:
        loaded = load(folder / SAVED_MODEL_DIR)
        diffs["saved_model"] = float(np.abs(predict(loaded, images) - expected).max())
    bad = {k: v for k, v in diffs.items() if not v <= 1e-5}
    if bad:
        raise RuntimeError(
            f"The exported model in {folder} does not reproduce the in-memory model: largest "
            f"differences {bad} (tolerance 1e-5). Please report this with the model config."
        )
    return diffs


def export_model(
    model,
    out_dir,
    record=None,
    class_names=None,
    formats=("keras", "saved_model"),
    overwrite=False,
    verify=True,
):
    """Write a model's export folder: ``model.keras``, ``saved_model/`` and ``model.json``.

    The SavedModel's signatures ``serve`` and ``serving_default`` take uint8 images
    ``(batch, H, W, C)`` of the training size (input name ``images``), cast them to
    float32 (the model rescales 0..255 itself) and return class probabilities
    (output name ``output_0``), in inference mode (BatchNorm moving statistics,
    dropout off). Optimizer state is left out: a compiled model is exported as an
    uncompiled copy with the same weights.

    Args:
        model: a built single-input image ``keras.Model``, normally a
            `keras_attn.AttentionCNN` (its config goes into the card).
        out_dir: str or Path, the export folder (created if needed).
        record: dict or None, default None. The protocol record the weights
            came from (data, seed, validation and test accuracy, settings); stored
            whole in the card.
        class_names: list of str or None, default None. One name per output;
            None takes ``class_names`` from ``record`` if it has them, else the
            class indices ``"0"``, ``"1"``...
        formats: tuple, default ``("keras", "saved_model")``. Which artifacts to
            write; ``"saved_model"`` needs the TensorFlow backend.
        overwrite: bool, default False. Replace an existing export in
            ``out_dir`` (only ``model.keras``, ``saved_model/`` and ``model.json``
            are touched).
        verify: bool, default True. Reload what was written and check that it
            predicts like ``model`` within 1e-5 (about a second per model); the
            differences go into the card.

    Returns:
        dict, the model card (also written to ``out_dir/model.json``).

    Raises:
        RuntimeError: ``"saved_model"`` requested on a backend other than TensorFlow.
        FileExistsError: ``out_dir`` already holds an export and ``overwrite`` is False.
        ValueError: bad ``formats``, class names, or a model that does not take images.

    Example:
    >>> import keras_attn
    >>> from keras_attn.export import export_model
    >>> model = keras_attn.build("cnn_eca")
    >>> card = export_model(model, "saved_models/cnn_eca", class_names=[
    ...     "airplane", "automobile", "bird", "cat", "deer",
    ...     "dog", "frog", "horse", "ship", "truck"])  # doctest: +SKIP
    >>> card["input"]["shape"]  # doctest: +SKIP
    [None, 32, 32, 3]
    """
    formats = (formats,) if isinstance(formats, str) else tuple(formats)
    unknown = [f for f in formats if f not in ("keras", "saved_model")]
    if unknown or not formats:
        raise ValueError(
            f"`formats` must be a non-empty subset of ('keras', 'saved_model'), got {formats!r}."
        )
    if "saved_model" in formats:
        _require_tensorflow("Writing a TensorFlow SavedModel")
    if not isinstance(model, keras.Model):
        raise ValueError(f"`model` must be a keras.Model, got {type(model).__name__}.")
    image_shape = _image_input_shape(model)
    num_classes = int(model.output_shape[-1])
    class_names, names_source = _class_names(class_names, record, num_classes)

    out_dir = Path(out_dir)
    targets = [out_dir / KERAS_FILE, out_dir / SAVED_MODEL_DIR, out_dir / CARD_FILE]
    existing = [p.name for p in targets if p.exists()]
    if existing and not overwrite:
        raise FileExistsError(
            f"{out_dir} already holds an export ({', '.join(existing)}). Pass overwrite=True "
            "(--overwrite on the command line) to replace it, or choose another folder."
        )
    out_dir.mkdir(parents=True, exist_ok=True)

    # Write into a scratch folder beside the target, then move into place, so a failed
    # export never leaves a half-written model where a good one was.
    with tempfile.TemporaryDirectory(dir=out_dir, prefix=".export-") as tmp:
        tmp = Path(tmp)
        inference_model = _inference_copy(model)
        if "keras" in formats:
            inference_model.save(tmp / KERAS_FILE)
        if "saved_model" in formats:
            _write_saved_model(inference_model, tmp / SAVED_MODEL_DIR, image_shape)
        # Compared with the model as given, so the copy is checked too.
        diffs = _check_export(model, tmp, image_shape, formats) if verify else None

        from keras_attn.backbone import count_trainable_params

        config = getattr(model, "model_config", None)
        card = {
            "format": CARD_FORMAT,
            "name": model.name,
            "description": _description(model.name),
            "class": type(model).__name__,
            "config": config,
            "trainable_params": count_trainable_params(model),
            "total_params": int(model.count_params()),
            "record": record,
            "record_summary": _record_summary(record),
            "class_names": class_names,
            "class_names_source": names_source,
            "input": {
                "name": INPUT_NAME,
                "shape": [None, *image_shape],
                "dtype": "uint8",
                "value_range": [0, 255],
                "channels": "RGB" if image_shape[-1] == 3 else f"{image_shape[-1]} channel(s)",
                "preprocessing": "none outside the model: the serving signature casts uint8 to "
                "float32 and the model rescales 0..255 itself",
                "other_sizes": "refused by the SavedModel; keras_attn.export.load_images and "
                "scripts/predict.py center-crop and resize by default (--resize)",
            },
            "output": {
                "name": OUTPUT_NAME,
                "shape": [None, num_classes],
                "dtype": "float32",
                "meaning": "class probabilities (softmax), in the order of class_names",
            },
            "files": {
                **({"keras": KERAS_FILE} if "keras" in formats else {}),
                **({"saved_model": SAVED_MODEL_DIR} if "saved_model" in formats else {}),
            },
            "signatures": list(SIGNATURES) if "saved_model" in formats else [],
            "verified_max_abs_diff": diffs,
            "versions": {**versions(), "keras_backend": backend()},
            "exported_at": datetime.datetime.now(datetime.timezone.utc).isoformat(
                timespec="seconds"
            ),
        }
        card = _jsonable(card)
        (tmp / CARD_FILE).write_text(json.dumps(card, indent=2) + "\n")

        for target in targets:
            if target.is_dir():
                shutil.rmtree(target)
            elif target.exists():
                target.unlink()
        for target in targets:
            if (tmp / target.name).exists():
                os.replace(tmp / target.name, target)
    return card


def _description(name):
    from keras_attn.zoo import VARIANTS

    return VARIANTS.get(name, {}).get("description")


def _protocol_best_run(results_dir, model_name):
    """``(record, weights_path)`` of the best run of ``model_name`` in ``results_dir``.

    The one place export reads protocol results: `keras_attn.protocol.best_run`.
    """
    from keras_attn import protocol

    best_run = getattr(protocol, "best_run", None)
    if best_run is None:
        raise NotImplementedError(
            "keras_attn.protocol has no best_run(out_dir, model_name) -> (record, weights_path) "
            "yet, so a protocol run cannot be exported by name. Export a .keras file instead: "
            "python scripts/export.py path/to/model.keras --out saved_models/NAME."
        )
    return best_run(results_dir, model_name)


def _local_copy(path, tmp_dir):
    """``path`` itself, or a local copy of a remote (``gs://``...) file."""
    path = str(path)
    if "://" not in path:
        return Path(path)
    import tensorflow as tf

    local = Path(tmp_dir) / path.rsplit("/", 1)[-1]
    tf.io.gfile.copy(path, str(local), overwrite=True)
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


def export_best(results_dir, model_name, out_root="saved_models", overwrite=False, **kwargs):
    """Export the best run of ``model_name`` in a protocol results folder.

    Asks `keras_attn.protocol.best_run` for the best run's record and weights
    (the run with the best validation accuracy), rebuilds the model and calls
    `export_model` into ``out_root/model_name`` with the record in the card. On a
    backend other than TensorFlow the export runs in a TensorFlow subprocess.

    Args:
        results_dir: str or Path, a protocol output folder (e.g. ``results/ae``).
        model_name: str, a model name trained there (e.g. ``"cnn_conv_ae"``).
        out_root: str or Path, default ``"saved_models"``. The export goes to
            ``out_root/model_name``.
        overwrite: bool, default False. Replace an existing export.
        **kwargs: passed to `export_model` (``class_names``, ``formats``, ``verify``).

    Returns:
        dict, the model card.

    Example:
    >>> from keras_attn.export import export_best
    >>> card = export_best("results/ae", "cnn_conv_ae")  # doctest: +SKIP
    >>> card["record_summary"]["test_accuracy"]  # doctest: +SKIP
    0.7312
    """
    if keras.backend.backend() != "tensorflow" and "saved_model" in kwargs.get(
        "formats", ("saved_model",)
    ):
        return _export_best_on_tensorflow(results_dir, model_name, out_root, overwrite, kwargs)
    record, weights_path = _protocol_best_run(results_dir, model_name)
    with tempfile.TemporaryDirectory() as tmp:
        model = _model_from_weights(_local_copy(weights_path, tmp), record)
    return export_model(
        model, Path(out_root) / model_name, record=record, overwrite=overwrite, **kwargs
    )


def _export_best_on_tensorflow(results_dir, model_name, out_root, overwrite, kwargs):
    import subprocess
    import sys

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


# --------------------------------------------------------------------------- load


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


def _load_saved_model(path):
    import tensorflow as tf

    return tf.saved_model.load(str(path))


def load(path, format="auto", **kwargs):
    """Load an exported model: the export folder, its ``.keras`` file or its SavedModel.

    Args:
        path: str or Path. An export folder (written by `export_model`), a
            ``.keras`` file, or a TensorFlow SavedModel folder.
        format: str, default ``"auto"``. For an export folder, which artifact to
            load: ``"auto"`` (the ``.keras`` file when present, else the
            SavedModel), ``"keras"`` or ``"saved_model"``. For a file or a
            SavedModel folder it must agree with what ``path`` is (or be "auto").
        **kwargs: passed to ``keras.saving.load_model`` (``.keras`` only), e.g.
            ``custom_objects``.

    Returns:
        A ``keras.Model`` (``.keras``, on any backend) or the object
        ``tf.saved_model.load`` returns (call ``obj.serve(uint8_images)``; keep a
        reference to it while you use it). `predict` accepts either.

    Raises:
        FileNotFoundError: ``path`` does not exist.
        ValueError: ``path`` is not an export, the requested format is not
            there, or a ``.keras`` file needs classes of a package that is not
            imported (the message names them).

    Example:
    >>> import keras_attn
    >>> model = keras_attn.load("saved_models/cnn_conv_ae")  # doctest: +SKIP
    >>> served = keras_attn.load("saved_models/cnn_conv_ae", format="saved_model")  # doctest: +SKIP
    """
    if format not in LOAD_FORMATS:
        raise ValueError(f"`format` must be one of {LOAD_FORMATS}, got {format!r}.")
    path = Path(path)
    if not path.exists():
        raise FileNotFoundError(f"No such file or folder: {path}. Expected {_EXPECTED}.")
    if path.is_file():
        if path.suffix != ".keras":
            raise ValueError(f"{path} is not a model export. Expected {_EXPECTED}.")
        if format == "saved_model":
            raise ValueError(f"{path} is a .keras file, not a SavedModel (format={format!r}).")
        return _load_keras_file(path, **kwargs)
    if (path / "saved_model.pb").exists():
        if format == "keras":
            raise ValueError(
                f"{path} is a SavedModel folder; the .keras file of an export sits beside it "
                f"({path.parent / KERAS_FILE})."
            )
        return _load_saved_model(path)
    keras_file, saved_model = path / KERAS_FILE, path / SAVED_MODEL_DIR
    has_keras, has_sm = keras_file.is_file(), (saved_model / "saved_model.pb").exists()
    if format in ("auto", "keras") and has_keras:
        return _load_keras_file(keras_file, **kwargs)
    if format in ("auto", "saved_model") and has_sm:
        return _load_saved_model(saved_model)
    if has_keras or has_sm:
        present = KERAS_FILE if has_keras else SAVED_MODEL_DIR
        raise ValueError(f"{path} has no {format!r} artifact (it has only {present}).")
    found = sorted(p.name for p in path.iterdir())[:8]
    raise ValueError(
        f"{path} is not a model export: expected {_EXPECTED}. It holds: "
        f"{', '.join(found) if found else 'nothing'}."
    )


def load_card(path):
    """The model card (``model.json``) of an export.

    Args:
        path: str or Path, the export folder, or its ``.keras`` file, ``saved_model``
            folder or ``model.json``.

    Returns:
        dict, or None when there is no card (e.g. a bare ``.keras`` file).

    Example:
    >>> from keras_attn.export import load_card
    >>> load_card("saved_models/cnn_conv_ae")["class_names"][:2]  # doctest: +SKIP
    ['airplane', 'automobile']
    """
    path = Path(path)
    candidates = [path] if path.name == CARD_FILE else [path / CARD_FILE, path.parent / CARD_FILE]
    for candidate in candidates:
        if candidate.is_file():
            return json.loads(candidate.read_text())
    return None


# --------------------------------------------------------------------------- images


def read_image(path, channels=3):
    """Decode an image file to a uint8 array ``(height, width, channels)`` with Pillow.

    Grayscale, palette and RGBA images are converted: to RGB for 3 channels
    (transparent pixels composited over white), to grayscale for 1 channel.
    Animated images give their first frame.

    Args:
        path: str or Path, a PNG, JPEG or other Pillow-readable file.
        channels: int, default 3. 1 (grayscale) or 3 (RGB).

    Returns:
        ``np.ndarray`` of dtype uint8.

    Raises:
        FileNotFoundError: no such file.
        ValueError: the file cannot be decoded as an image (the message names it),
            or ``channels`` is not 1 or 3.

    Example:
    >>> from keras_attn.export import read_image
    >>> read_image("cat.png").shape  # doctest: +SKIP
    (480, 640, 3)
    """
    from PIL import Image, UnidentifiedImageError

    if channels not in (1, 3):
        raise ValueError(f"`channels` must be 1 (grayscale) or 3 (RGB), got {channels!r}.")
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"Image not found: {path}")
    try:
        with Image.open(path) as img:
            img.seek(0)
            img.load()
            if img.mode in ("RGBA", "LA", "PA") or (img.mode == "P" and "transparency" in img.info):
                rgba = img.convert("RGBA")
                img = Image.new("RGBA", rgba.size, (255, 255, 255, 255))
                img.alpha_composite(rgba)
            img = img.convert("RGB" if channels == 3 else "L")
    except (UnidentifiedImageError, OSError, SyntaxError, ValueError) as err:
        raise ValueError(
            f"Cannot decode {path} as an image ({type(err).__name__}: {err}). Give a PNG or "
            "JPEG file (anything Pillow reads)."
        ) from err
    array = np.asarray(img, dtype=np.uint8)
    return array[..., None] if channels == 1 else array


def fit_image(image, size, resize="crop"):
    """Bring a uint8 image to ``size = (height, width)``.

    Args:
        image: uint8 array ``(h, w, channels)``.
        size: ``(height, width)`` the model takes.
        resize: str, default ``"crop"``. ``"crop"``: center-crop to the target
            aspect ratio, then resize (bilinear), so nothing is distorted;
            ``"stretch"``: resize the whole image; ``"none"``: refuse any other
            size.

    Returns:
        uint8 array ``(height, width, channels)`` (``image`` itself when it already fits).

    Raises:
        ValueError: the size differs and ``resize="none"``, or an unknown mode.

    Example:
    >>> import numpy as np
    >>> fit_image(np.zeros((48, 64, 3), "uint8"), (32, 32)).shape
    (32, 32, 3)
    """
    from PIL import Image

    if resize not in RESIZE_MODES:
        raise ValueError(f"`resize` must be one of {RESIZE_MODES}, got {resize!r}.")
    height, width = (int(s) for s in size)
    h, w = image.shape[:2]
    if (h, w) == (height, width):
        return image
    if resize == "none":
        raise ValueError(
            f"Image is {h}x{w} (height x width) but the model takes {height}x{width}. Resize it "
            "first, or use resize='crop' / 'stretch' (--resize crop|stretch)."
        )
    channels = image.shape[-1]
    img = Image.fromarray(image[..., 0] if channels == 1 else image)
    if resize == "crop":
        target = width / height
        if w / h > target:  # too wide: crop the sides
            new_w = max(1, round(h * target))
            left = (w - new_w) // 2
            img = img.crop((left, 0, left + new_w, h))
        elif w / h < target:  # too tall: crop top and bottom
            new_h = max(1, round(w / target))
            top = (h - new_h) // 2
            img = img.crop((0, top, w, top + new_h))
    img = img.resize((width, height), Image.Resampling.BILINEAR, reducing_gap=3.0)
    out = np.asarray(img, dtype=np.uint8)
    return out[..., None] if channels == 1 else out


def load_images(paths, image_shape, resize="crop"):
    """Read images and fit them to a model's input: a uint8 batch and a note per image.

    Args:
        paths: list of str or Path.
        image_shape: ``(height, width, channels)`` the model takes (``card["input"]
            ["shape"][1:]``, or ``model.input_shape[1:]``).
        resize: str, default ``"crop"``; see `fit_image`.

    Returns:
        ``(images, notes)``: uint8 array ``(n, height, width, channels)``, and for
        each image None or a string saying how it was resized.

    Raises:
        ValueError: an image cannot be decoded (named), or is of another size with
            ``resize="none"`` (named).

    Example:
    >>> from keras_attn.export import load_images
    >>> images, notes = load_images(["cat.png"], (32, 32, 3))  # doctest: +SKIP
    >>> notes  # doctest: +SKIP
    ['cat.png is 480x640; center-cropped and resized to 32x32']
    """
    height, width, channels = (int(s) for s in image_shape)
    batch, notes = [], []
    for path in paths:
        image = read_image(path, channels)
        h, w = image.shape[:2]
        try:
            batch.append(fit_image(image, (height, width), resize))
        except ValueError as err:
            raise ValueError(f"{path}: {err}") from err
        if (h, w) == (height, width):
            notes.append(None)
        else:
            how = "center-cropped and resized" if resize == "crop" else "resized (stretched)"
            notes.append(f"{path} is {h}x{w}; {how} to {height}x{width}")
    if not batch:
        raise ValueError("No images given.")
    return np.stack(batch), notes


# --------------------------------------------------------------------------- predict


def predict(model, images, batch_size=256):
    """Class probabilities for uint8 images, from either loaded format.

    Args:
        model: a ``keras.Model`` (``.keras``) or a loaded SavedModel (its
            ``serve`` signature is used).
        images: uint8 array ``(n, height, width, channels)`` of the model's size
            (see `load_images`).
        batch_size: int, default 256.

    Returns:
        float32 array ``(n, num_classes)``.

    Example:
    >>> import keras_attn
    >>> from keras_attn.export import load_images, predict
    >>> model = keras_attn.load("saved_models/cnn_conv_ae")  # doctest: +SKIP
    >>> images, _ = load_images(["cat.png"], model.input_shape[1:])  # doctest: +SKIP
    >>> predict(model, images).shape  # doctest: +SKIP
    (1, 10)
    """
    images = np.asarray(images)
    if images.ndim != 4:
        raise ValueError(
            f"`images` must be a batch (n, height, width, channels), got shape {images.shape}."
        )
    if images.dtype != np.uint8:
        raise ValueError(
            f"`images` must be uint8 pixels 0..255 (as load_images returns), got {images.dtype}."
        )
    outputs = []
    if isinstance(model, keras.Model):
        expected = tuple(model.input_shape[1:])
        if tuple(images.shape[1:]) != expected:
            raise ValueError(
                f"The model takes images {expected}, got {tuple(images.shape[1:])}; "
                "use load_images(..., resize='crop')."
            )
        for start in range(0, len(images), batch_size):
            chunk = images[start : start + batch_size].astype("float32")
            outputs.append(keras.ops.convert_to_numpy(model(chunk, training=False)))
    elif hasattr(model, "serve"):
        import tensorflow as tf

        spec = model.serve.input_signature[0] if model.serve.input_signature else None
        if spec is not None and tuple(images.shape[1:]) != tuple(spec.shape[1:]):
            raise ValueError(
                f"The SavedModel takes images {tuple(spec.shape[1:])}, got "
                f"{tuple(images.shape[1:])}; use load_images(..., resize='crop')."
            )
        for start in range(0, len(images), batch_size):
            outputs.append(model.serve(tf.constant(images[start : start + batch_size])).numpy())
    else:
        raise ValueError(
            f"`model` must be a keras.Model or a loaded SavedModel with a `serve` signature, "
            f"got {type(model).__name__}."
        )
    return np.concatenate(outputs).astype("float32")


def top_k(probabilities, class_names=None, k=5):
    """The ``k`` most probable classes of each row, as ``(name, probability)`` pairs.

    Args:
        probabilities: array ``(n, num_classes)``.
        class_names: list of str or None, default None (class indices as names).
        k: int, default 5 (capped at the number of classes).

    Returns:
        list (one per row) of lists of ``(str, float)``, most probable first.

    Example:
    >>> top_k([[0.1, 0.7, 0.2]], ["cat", "dog", "ship"], k=2)
    [[('dog', 0.7), ('ship', 0.2)]]
    """
    probabilities = np.asarray(probabilities, dtype="float64")
    if isinstance(k, bool) or not isinstance(k, int) or k < 1:
        raise ValueError(f"`k` must be a positive integer, got {k!r}.")
    n = probabilities.shape[-1]
    names = list(class_names) if class_names is not None else [str(i) for i in range(n)]
    if len(names) != n:
        raise ValueError(f"Got {len(names)} class names for {n} classes.")
    result = []
    for row in probabilities:
        order = np.argsort(-row, kind="stable")[: min(k, n)]
        result.append([(names[i], float(row[i])) for i in order])
    return result
