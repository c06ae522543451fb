"""Export trained models as .keras, SavedModel, ONNX and TFLite with a model card; load them.

One folder per model (``saved_models/<name>/``): ``model.keras``, ``saved_model/``,
``model.onnx``, ``model.tflite`` and ``model.json``; each format is checked against
the Keras model when written. See ``saved_models/README.md``.
"""

import importlib
import warnings

from keras_attn.export.card import CARD_FILE, model_card
from keras_attn.export.conversion import CONVERTERS, converters
from keras_attn.export.formats import (
    FILES,
    FORMATS,
    INPUT_NAME,
    OUTPUT_NAME,
    available_formats,
    check_formats,
    install_hint,
)
from keras_attn.export.from_protocol import export_best, exportable_models
from keras_attn.export.loading import LOAD_FORMATS, load, load_card
from keras_attn.export.writer import TOLERANCE, export_model

KERAS_FILE = FILES["keras"]
SAVED_MODEL_DIR = FILES["saved_model"]
ONNX_FILE = FILES["onnx"]
TFLITE_FILE = FILES["tflite"]

#: Names that moved to `keras_attn.predict`; still importable from here, with a warning.
_MOVED_TO_PREDICT = ("RESIZE_MODES", "fit_image", "load_images", "predict", "read_image", "top_k")

__all__ = [
    "CARD_FILE",
    "CONVERTERS",
    "FILES",
    "FORMATS",
    "INPUT_NAME",
    "KERAS_FILE",
    "LOAD_FORMATS",
    "ONNX_FILE",
    "OUTPUT_NAME",
    "SAVED_MODEL_DIR",
    "TFLITE_FILE",
    "TOLERANCE",
    "available_formats",
    "check_formats",
    "converters",
    "export_best",
    "export_model",
    "exportable_models",
    "install_hint",
    "load",
    "load_card",
    "model_card",
    *_MOVED_TO_PREDICT,
]


def __getattr__(name):
    if name in _MOVED_TO_PREDICT:
        warnings.warn(
            f"keras_attn.export.{name} moved to keras_attn.predict.{name}; import it from there.",
            DeprecationWarning,
            stacklevel=2,
        )
        return getattr(importlib.import_module("keras_attn.predict"), name)
    raise AttributeError(f"module 'keras_attn.export' has no attribute {name!r}")
