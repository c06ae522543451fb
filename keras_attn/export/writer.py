"""Write a model's export folder: every format asked for, each checked against the model."""

from __future__ import annotations

import json
import os
import shutil
import tempfile
from pathlib import Path

import keras
import numpy as np

from keras_attn.export.card import CARD_FILE, image_input_shape, model_card
from keras_attn.export.formats import FILES, check_formats, check_writable, write_format
from keras_attn.export.loading import load
from keras_attn.predict import predict

__all__ = ["TOLERANCE", "export_model"]

#: Largest difference to the in-memory model an exported format may show.
TOLERANCE = 1e-5


def export_model(
    model,
    out_dir,
    record=None,
    class_names=None,
    formats=None,
    overwrite=False,
    verify=True,
):
    """Write a model's export folder: one file per format and the card ``model.json``.

    The SavedModel, ONNX and TFLite models take uint8 images ``(batch, H, W, C)`` of
    the training size (input ``images``), cast them to float32 (the model
    rescales 0..255 itself) and return class probabilities (output
    ``output_0``), in inference mode (BatchNorm moving statistics, dropout
    off); the SavedModel's signatures are ``serve`` and ``serving_default``.
    Optimizer state is left out: a compiled model is exported as an uncompiled
    copy with the same weights.

    Args:
        model: a built single-input image ``keras.Model``, normally a
            `keras_attn.AttentionCNN` (its config goes into the card).
        out_dir: str or Path, the export folder (created if needed).
        record: dict or None, default None. The protocol record the weights
            came from; stored whole in the card.
        class_names: list of str or None, default None. One name per output;
            None takes ``class_names`` from ``record`` if it has them, else the
            class indices ``"0"``, ``"1"``...
        formats: None (default: every format the installed packages allow,
            `keras_attn.export.available_formats`), a name or a sequence of names
            from ``("keras", "saved_model", "onnx", "tflite")``. All but
            ``"keras"`` need TensorFlow and its backend.
        overwrite: bool, default False. Replace an existing export in
            ``out_dir`` (only the export's own files are touched; formats not
            written this time are removed, so the folder matches its card).
        verify: bool, default True. Load each format with its own runtime and
            check that it predicts like ``model`` on a few random images within
            1e-5; the largest differences go into the card
            (``verified_max_abs_diff``).

    Returns:
        dict, the model card (also written to ``out_dir/model.json``).

    Raises:
        ImportError: a format's package is missing (the message says what to install).
        RuntimeError: a TensorFlow format on another backend, or a format that
            does not reproduce the model.
        FileExistsError: ``out_dir`` already holds an export and ``overwrite`` is False.
        ValueError: bad ``formats``, class names, or a model that does not take images.

    Example:
    >>> import tempfile, keras_attn
    >>> model = keras_attn.build("cnn_eca", blocks=[4], dense_units=4, input_shape=(8, 8, 3),
    ...                          num_classes=2)
    >>> card = export_model(model, tempfile.mkdtemp(), class_names=["cat", "dog"],
    ...                     formats="keras")
    >>> card["files"], card["verified_max_abs_diff"]["keras"] <= 1e-5
    ({'keras': 'model.keras'}, True)
    """
    formats = check_formats(formats)
    check_writable(formats)
    if not isinstance(model, keras.Model):
        raise ValueError(f"`model` must be a keras.Model, got {type(model).__name__}.")
    image_shape = image_input_shape(model)
    model_card(model, formats, record, class_names)  # checks the class names before any work

    out_dir = Path(out_dir)
    targets = [out_dir / name for name in (*FILES.values(), CARD_FILE)]
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
        for fmt in formats:
            write_format(fmt, inference_model, tmp / FILES[fmt], image_shape)
        # Compared with the model as given, so the copy is checked too.
        diffs = _check_export(model, tmp, image_shape, formats, out_dir) if verify else None
        card = model_card(model, formats, record, class_names, diffs)
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


def _inference_copy(model):
    """``model`` without its optimizer (an export holds what inference needs, no more).

    A compiled model carries its optimizer's state (twice the weights for Adam) into
    every format; a fresh copy from the config with the same weights does not.
    """
    if getattr(model, "optimizer", None) is None:
        return model
    copy = type(model).from_config(model.get_config())
    copy.set_weights(model.get_weights())
    return copy


def _check_export(model, folder, image_shape, formats, out_dir):
    """Load each written format with its runtime and compare it with ``model``."""
    rng = np.random.default_rng(0)
    images = rng.integers(0, 256, size=(4, *image_shape), dtype=np.uint8)
    expected = keras.ops.convert_to_numpy(model(images.astype("float32"), training=False))
    diffs = {}
    for fmt in formats:
        loaded = load(folder / FILES[fmt], format=fmt)
        diffs[fmt] = float(np.abs(predict(loaded, images) - expected).max())
        del loaded  # a SavedModel or an interpreter holds memory and files
    bad = {k: v for k, v in diffs.items() if not v <= TOLERANCE}
    if bad:
        raise RuntimeError(
            f"The export of {model.name!r} to {out_dir} does not reproduce the in-memory "
            f"model: largest differences {bad} (tolerance {TOLERANCE}). Please report this "
            "with the model config."
        )
    return diffs
