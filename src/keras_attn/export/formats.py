"""The export formats: the file each one writes and the packages it needs.

How each is written is `keras_attn.export.conversion`. Every format but ``.keras``
needs TensorFlow and its Keras backend.
"""

from __future__ import annotations

import importlib
import importlib.util

import keras

from keras_attn._checks import did_you_mean

__all__ = [
    "FILES",
    "FORMATS",
    "INPUT_NAME",
    "OUTPUT_NAME",
    "available_formats",
    "check_formats",
    "check_writable",
    "import_or_explain",
    "install_hint",
    "missing_packages",
]

FORMATS = ("keras", "saved_model", "onnx", "tflite")
#: Each format's file (or folder, for the SavedModel) in an export folder.
FILES = {
    "keras": "model.keras",
    "saved_model": "saved_model",
    "onnx": "model.onnx",
    "tflite": "model.tflite",
}
#: The serving signature's input and output names (SavedModel, ONNX, TFLite).
INPUT_NAME = "images"
OUTPUT_NAME = "output_0"

#: The packages writing and checking each format needs: (import name, pip name).
_NEEDS = {
    "keras": (),
    "saved_model": (("tensorflow", "tensorflow"),),
    "onnx": (
        ("tensorflow", "tensorflow"),
        ("tf2onnx", "tf2onnx"),
        ("onnx", "onnx"),
        ("onnxruntime", "onnxruntime"),
    ),
    "tflite": (("tensorflow", "tensorflow"),),
}
_TITLES = {"keras": ".keras", "saved_model": "SavedModel", "onnx": "ONNX", "tflite": "TFLite"}


def check_formats(formats):
    """The formats asked for, checked: a tuple of names from `FORMATS`.

    Args:
        formats: None (every format the installed packages allow, see
            `available_formats`), one name, or a sequence of names.

    Returns:
        tuple of str, in the order given, without repeats.

    Raises:
        ValueError: an unknown name (with the closest valid one), or none at all.

    Example:
    >>> check_formats("onnx"), check_formats(["keras", "tflite", "keras"])
    (('onnx',), ('keras', 'tflite'))
    """
    if formats is None:
        return available_formats()
    formats = (formats,) if isinstance(formats, str) else tuple(formats)
    unknown = [f for f in formats if f not in FORMATS]
    if unknown or not formats:
        hint = did_you_mean(unknown[0], FORMATS) if unknown else ""
        raise ValueError(
            f"`formats` must be a non-empty subset of {FORMATS}, got {formats!r}.{hint}"
        )
    return tuple(dict.fromkeys(formats))


def missing_packages(fmt):
    """The packages (pip names) that writing and checking ``fmt`` needs and are not installed.

    Example:
    >>> missing_packages("keras")
    []
    """
    return [pip for module, pip in _NEEDS[check_formats(fmt)[0]] if not _installed(module)]


def available_formats():
    """The formats whose packages are installed, in `FORMATS` order.

    Example:
    >>> available_formats()[0]
    'keras'
    """
    return tuple(f for f in FORMATS if not missing_packages(f))


def install_hint(fmt):
    """One line saying what to install for ``fmt``, or None when nothing is missing.

    Example:
    >>> install_hint("keras") is None
    True
    """
    missing = missing_packages(fmt)
    if not missing:
        return None
    return f"the {_TITLES[fmt]} export needs {', '.join(missing)}: pip install {' '.join(missing)}"


def import_or_explain(module, what, pip_name=None):
    """Import ``module``, or raise an ImportError that says in one line what to install.

    Args:
        module: str, the module to import (e.g. ``"tensorflow"``).
        what: str, what needs it, the start of the message (e.g. ``"Loading a
            SavedModel"``).
        pip_name: str or None, the package to install (default: ``module``).

    Returns:
        The imported module.

    Raises:
        ImportError: ``module`` is not installed.

    Example:
    >>> import_or_explain("json", "Reading a model card").dumps({"a": 1})
    '{"a": 1}'
    >>> import_or_explain("no_such_package", "Reading minds")
    Traceback (most recent call last):
    ...
    ImportError: Reading minds needs no_such_package: pip install no_such_package
    """
    if not _installed(module):
        pip_name = pip_name or module
        raise ImportError(f"{what} needs {pip_name}: pip install {pip_name}")
    return importlib.import_module(module)


def check_writable(formats):
    """Check that this process can write every format in ``formats``, before any work.

    Args:
        formats: a sequence of names from `FORMATS`.

    Raises:
        ImportError: a package a format needs is missing (one line per format,
            saying what to install).
        RuntimeError: a format other than ``.keras`` on a backend other than
            TensorFlow.

    Example:
    >>> check_writable(["keras"])  # .keras files are written on every backend
    """
    hints = [install_hint(f) for f in formats if install_hint(f)]
    if hints:
        raise ImportError("; ".join(hints))
    tf_formats = [f for f in formats if f != "keras"]
    backend = keras.backend.backend()
    if tf_formats and backend != "tensorflow":
        titles = ", ".join(_TITLES[f] for f in tf_formats)
        raise RuntimeError(
            f"Writing {titles} needs the TensorFlow backend, but this process runs Keras on "
            f"{backend!r}. Export from a process started with KERAS_BACKEND=tensorflow "
            "(keras-attn export does this itself when TensorFlow is installed). .keras files "
            "are portable across backends: save the model here with model.save('model.keras') "
            "and export that file there (keras-attn export model.keras --name NAME)."
        )


def _installed(module):
    try:
        return importlib.util.find_spec(module) is not None
    except (ImportError, ValueError):
        return False
