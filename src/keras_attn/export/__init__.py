"""Export trained models as .keras, SavedModel, ONNX and TFLite with a model card; load them.

One folder per model (``saved_models/<name>/``): ``model.keras``, ``saved_model/``,
``model.onnx``, ``model.tflite`` and ``model.json``; each format is checked against
the Keras model when written. See ``saved_models/README.md``. The formats and their
file names are `keras_attn.export.formats.FORMATS` and ``FILES``; running an exported
model on images is `keras_attn.predict`.
"""

from keras_attn.export.card import model_card
from keras_attn.export.conversion import converters
from keras_attn.export.formats import available_formats, check_formats, install_hint
from keras_attn.export.from_protocol import export_best, exportable_models
from keras_attn.export.loading import load, load_card
from keras_attn.export.writer import export_model

__all__ = [
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
]
