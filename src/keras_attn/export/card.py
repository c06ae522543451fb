"""The model card (``model.json``): what an export holds, where it came from, how to feed it."""

from __future__ import annotations

import datetime
import json
from pathlib import Path

import numpy as np

from keras_attn.export.formats import FILES, INPUT_NAME, OUTPUT_NAME
from keras_attn.runtime import backend, versions

__all__ = ["CARD_FILE", "CARD_FORMAT", "RUNTIMES", "image_input_shape", "model_card"]

CARD_FILE = "model.json"
CARD_FORMAT = 1
#: How each format is loaded without keras_attn (the ``.keras`` file needs it imported).
RUNTIMES = {
    "keras": "keras.saving.load_model after `import keras_attn` (any backend)",
    "saved_model": "tf.saved_model.load (signatures serve, serving_default)",
    "onnx": "onnxruntime.InferenceSession",
    "tflite": "ai_edge_litert.interpreter.Interpreter or tf.lite.Interpreter",
}
SIGNATURES = ("serve", "serving_default")


def image_input_shape(model):
    """The ``(height, width, channels)`` a single-input image model takes.

    Raises:
        ValueError: several inputs, or not a fixed-size image input.

    Example:
    >>> import keras_attn
    >>> image_input_shape(keras_attn.build("cnn", blocks=[4], input_shape=(8, 8, 3)))
    (8, 8, 3)
    """
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


def model_card(
    model, formats, record=None, class_names=None, diffs=None, converters=None, rejected=None
):
    """The model card of an export of ``model`` in ``formats``, as a JSON-able dict.

    Args:
        model: the exported single-input image ``keras.Model``.
        formats: the formats written (names from `keras_attn.export.FORMATS`).
        record: dict or None, the protocol record the weights came from (stored
            whole, with its headline numbers in ``record_summary``).
        class_names: list of str or None. None takes the record's
            ``class_names`` if it has them, else the class indices.
        diffs: dict or None, each format's largest difference to ``model`` found
            at export (``verified_max_abs_diff``); None when it was not checked.
        converters: dict or None, the converter that wrote each format
            (`keras_attn.export.conversion`).
        rejected: dict or None, for a format whose first converter(s) failed
            the check, why each was passed over (``rejected_converters``).

    Returns:
        dict (see ``saved_models/README.md`` for the keys).

    Raises:
        ValueError: not one class name per output, or a string for ``class_names``.

    Example:
    >>> import keras_attn
    >>> model = keras_attn.build("cnn", blocks=[4], dense_units=4, input_shape=(8, 8, 3),
    ...                          num_classes=2)
    >>> card = model_card(model, ["keras", "onnx"], class_names=["cat", "dog"])
    >>> card["files"], card["input"]["shape"], card["class_names"]
    ({'keras': 'model.keras', 'onnx': 'model.onnx'}, [None, 8, 8, 3], ['cat', 'dog'])
    """
    from keras_attn.backbone import count_trainable_params
    from keras_attn.zoo import VARIANTS

    image_shape = image_input_shape(model)
    num_classes = int(model.output_shape[-1])
    class_names, names_source = _class_names(class_names, record, num_classes)
    card = {
        "format": CARD_FORMAT,
        "name": model.name,
        "description": VARIANTS.get(model.name, {}).get("description"),
        "class": type(model).__name__,
        "config": getattr(model, "model_config", None),
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
            "float32 and the model rescales 0..255 itself (the .keras model takes float "
            "pixels 0..255)",
            "other_sizes": "refused by the SavedModel, ONNX and TFLite models; "
            "keras_attn.predict.load_images and keras-attn predict center-crop and resize "
            "by default (--resize)",
        },
        "output": {
            "name": OUTPUT_NAME,
            "shape": [None, num_classes],
            "dtype": "float32",
            "meaning": "class probabilities (softmax), in the order of class_names",
        },
        "files": {f: FILES[f] for f in formats},
        "runtimes": {f: RUNTIMES[f] for f in formats},
        "signatures": list(SIGNATURES) if "saved_model" in formats else [],
        "verified_max_abs_diff": diffs,
        "converters": converters,
        "rejected_converters": rejected or {},
        "versions": {**versions(), "keras_backend": backend()},
        "exported_at": datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds"),
    }
    return json.loads(json.dumps(card, default=_json_default))


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


def _json_default(obj):
    if isinstance(obj, np.generic):
        return obj.item()
    if isinstance(obj, np.ndarray):
        return obj.tolist()
    if isinstance(obj, Path):
        return str(obj)
    raise TypeError(f"{type(obj).__name__} is not JSON serializable: {obj!r}")


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
