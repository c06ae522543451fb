"""The published folder: its files, its metadata, and the checks a folder passes before loading."""

from __future__ import annotations

import hashlib
import json
import os

__all__ = ["FILES", "check_folder", "read_metadata", "sha256_of"]

#: What a published folder holds; the first three are Keras' own (``zipped=False``).
CONFIG, METADATA, WEIGHTS, CARD = "config.json", "metadata.json", "model.weights.h5", "README.md"
FILES = (CONFIG, METADATA, WEIGHTS, CARD)
#: The packages whose classes a published config may name.
OWN_PACKAGES = ("keras", "keras_attn")


def sha256_of(path):
    """The SHA-256 of a file, as hex.

    Example:
    >>> import os, tempfile
    >>> path = os.path.join(tempfile.mkdtemp(), "x")
    >>> _ = open(path, "wb").write(b"abc")
    >>> sha256_of(path)[:16]
    'ba7816bf8f01cfea'
    """
    digest = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def read_metadata(folder):
    """The keras_attn part of a published folder's ``metadata.json`` (``{}`` if it has none).

    Example:
    >>> import json, os, tempfile
    >>> folder = tempfile.mkdtemp()
    >>> with open(os.path.join(folder, "metadata.json"), "w") as f:
    ...     json.dump({"keras_version": "3", "keras_attn": {"model": "cnn_eca"}}, f)
    >>> read_metadata(folder)
    {'model': 'cnn_eca'}
    """
    path = os.path.join(folder, METADATA)
    if not os.path.isfile(path):
        return {}
    with open(path) as f:
        return json.load(f).get("keras_attn") or {}


def _foreign_classes(config):
    """``(registered name, package)`` of every class in a Keras config not of `OWN_PACKAGES`."""
    found, stack = [], [config]
    while stack:
        item = stack.pop()
        if isinstance(item, dict):
            module = item.get("module")
            if isinstance(module, str) and "class_name" in item:
                package = module.split(".")[0]
                if package not in OWN_PACKAGES:
                    found.append((item.get("registered_name") or item["class_name"], package))
            stack.extend(item.values())
        elif isinstance(item, list):
            stack.extend(item)
    return found


def check_folder(folder, sha256=None):
    """Check a published folder before loading it; its metadata, or a one-line ``ValueError``.

    Checks that the folder and its ``config.json`` and ``model.weights.h5`` are
    there, that the config names only classes of Keras and keras_attn, and that
    the weights' SHA-256 is ``sha256`` (when given) and the one the metadata
    records (when it records one).

    Args:
        folder: str, a folder written by `keras_attn.pretrained.publish`.
        sha256: str or None, the weights file's expected SHA-256 (hex).

    Returns:
        dict, the keras_attn metadata (`read_metadata`).

    Example:
    >>> import tempfile
    >>> check_folder(tempfile.mkdtemp())
    Traceback (most recent call last):
    ...
    ValueError: ... has no config.json: a published model folder holds config.json, ...
    """
    if not os.path.isdir(folder):
        raise ValueError(
            f"No such folder: {folder} (give a folder written by keras-attn publish, an "
            "https:// address of one, or hf://owner/name)."
        )
    for name in (CONFIG, WEIGHTS):
        if not os.path.isfile(os.path.join(folder, name)):
            raise ValueError(
                f"{folder} has no {name}: a published model folder holds config.json, "
                "metadata.json and model.weights.h5 (written by keras-attn publish)."
            )
    with open(os.path.join(folder, CONFIG)) as f:
        try:
            config = json.load(f)
        except json.JSONDecodeError as err:
            raise ValueError(f"{folder}/{CONFIG} is not JSON ({err}).") from None
    foreign = _foreign_classes(config)
    if foreign:
        name, package = foreign[0]
        raise ValueError(
            f"{folder}/{CONFIG} describes {name!r}, a class of the package {package!r}, not a "
            f"keras_attn model: load it with {package} (or keras.saving.load_model after "
            f"importing {package})."
        )
    metadata = read_metadata(folder)
    actual = sha256_of(os.path.join(folder, WEIGHTS))
    for expected, where in ((sha256, "expected"), (metadata.get("weights_sha256"), "recorded")):
        if expected and expected.lower() != actual:
            raise ValueError(
                f"{folder}/{WEIGHTS} has SHA-256 {actual}, but the {where} one is {expected}: "
                "the file is corrupt, truncated or another model's."
            )
    return metadata
