"""Write a model's export folder: every format asked for, each checked against the model."""

from __future__ import annotations

import json
import os
import shutil
import tempfile
from pathlib import Path

import keras
import numpy as np

from keras_attn.export.card import CARD_FILE, RUNTIMES, image_input_shape, model_card
from keras_attn.export.conversion import FROM_SAVED_MODEL, KERAS_SAVED_MODEL, convert, converters
from keras_attn.export.formats import FILES, check_formats, check_writable
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

    Each format is written by Keras' own ``model.export`` (``model.save`` for
    ``.keras``), then loaded with its own runtime and compared with ``model``
    on a black, a white and two random images. ONNX and TFLite fall back to
    tf2onnx / the TFLite converter run on the SavedModel when Keras' exporter
    fails or its model does not predict like ``model`` (see
    `keras_attn.export.conversion`). The card records each format's converter,
    its largest difference, and why any converter was passed over. A format no
    converter writes faithfully fails the whole export: nothing is written, and
    the error names the format, each converter's failure and the formats that
    passed.

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
            check that it predicts like ``model`` within `TOLERANCE` (1e-5); the
            largest differences go into the card (``verified_max_abs_diff``).
            False skips the check (and the fallbacks it triggers): faster, unchecked.

    Returns:
        dict, the model card (also written to ``out_dir/model.json``).

    Raises:
        ImportError: a format's package is missing (the message says what to install).
        RuntimeError: a TensorFlow format on another backend, or a format that
            no converter could write so that it reproduces the model.
        FileExistsError: ``out_dir`` already holds an export and ``overwrite`` is False.
        ValueError: bad ``formats``, class names, or a model that does not take images.

    Example:
    >>> import tempfile, keras_attn
    >>> model = keras_attn.build("cnn_eca", blocks=[4], dense_units=4, input_shape=(8, 8, 3),
    ...                          num_classes=2)
    >>> card = export_model(model, tempfile.mkdtemp(), class_names=["cat", "dog"],
    ...                     formats="keras")
    >>> card["files"], card["converters"], card["verified_max_abs_diff"]["keras"] <= 1e-5
    ({'keras': 'model.keras'}, {'keras': 'keras.Model.save'}, True)
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
    created = not out_dir.exists()
    out_dir.mkdir(parents=True, exist_ok=True)

    # Write into a scratch folder beside the target, then move into place, so a failed
    # export never leaves a half-written model where a good one was.
    try:
        with tempfile.TemporaryDirectory(dir=out_dir, prefix=".export-") as tmp:
            tmp = Path(tmp)
            written = _write_formats(model, tmp, image_shape, formats, verify, out_dir)
            card = model_card(model, formats, record, class_names, **written)
            (tmp / CARD_FILE).write_text(json.dumps(card, indent=2) + "\n")
            for target in targets:
                _remove(target)
            for target in targets:
                if (tmp / target.name).exists():
                    os.replace(tmp / target.name, target)
    except BaseException:
        if created and not any(out_dir.iterdir()):
            out_dir.rmdir()
        raise
    return card


def _write_formats(model, folder, image_shape, formats, verify, out_dir):
    """Write each format into ``folder`` with the first of its converters that passes the check.

    Returns the card's ``diffs``, ``converters`` and ``rejected`` (see `model_card`).
    Raises RuntimeError naming every format no converter could write faithfully.
    """
    inference_model = _inference_copy(model)
    images = _check_images(image_shape)
    # Compared with the model as given, so the copy is checked too.
    expected = keras.ops.convert_to_numpy(model(images.astype("float32"), training=False))
    diffs, used, rejected, failed = {}, {}, {}, []
    saved_model = None  # a SavedModel of the model, for the converters that start from one
    for fmt in formats:
        target = folder / FILES[fmt]
        for converter in converters(fmt):
            _remove(target)
            try:
                if converter in FROM_SAVED_MODEL and saved_model is None:
                    saved_model = _scratch_saved_model(inference_model, folder, image_shape)
                convert(fmt, converter, inference_model, target, image_shape, saved_model)
            except Exception as err:  # any converter error: try the next converter
                rejected.setdefault(fmt, []).append(f"{converter} failed: {_one_line(err)}")
                continue
            if not verify:
                break
            try:
                diff = _max_abs_diff(target, fmt, images, expected)
            except Exception as err:  # the runtime refuses what the converter wrote
                rejected.setdefault(fmt, []).append(
                    f"{converter} wrote a model that {RUNTIMES[fmt].split(' ')[0]} cannot run: "
                    f"{_one_line(err)}"
                )
                continue
            if diff <= TOLERANCE:
                diffs[fmt] = diff
                break
            rejected.setdefault(fmt, []).append(
                f"{converter} wrote a model whose predictions differ by up to {diff:.1e} "
                f"(tolerance {TOLERANCE:.0e})"
            )
        else:
            failed.append(fmt)
            continue
        used[fmt] = converter
        if fmt == "saved_model":
            saved_model = target
    if failed:
        raise RuntimeError(_failure_report(model, out_dir, failed, rejected, diffs, verify))
    return {"diffs": diffs if verify else None, "converters": used, "rejected": rejected}


def _failure_report(model, out_dir, failed, rejected, diffs, verify):
    """The error of an export where some formats could not be written faithfully."""
    lines = [
        f"Could not export {model.name!r} to {out_dir} in {', '.join(failed)}; nothing was written:"
    ]
    lines += [f"  {fmt}: {reason}" for fmt in failed for reason in rejected[fmt]]
    passed = [f for f in diffs if f not in failed] if verify else []
    if passed:
        checked = ", ".join(f"{f} (largest difference {diffs[f]:.1e})" for f in passed)
        lines.append(
            f"These passed: {checked}; export them alone with formats={passed!r} "
            f"(--formats {','.join(passed)}), and please report the failure with the model config."
        )
    return "\n".join(lines)


def _scratch_saved_model(model, folder, image_shape):
    """A SavedModel of ``model`` for the converters that start from one (not part of the export)."""
    path = folder / ".saved_model_to_convert"
    _remove(path)
    convert("saved_model", KERAS_SAVED_MODEL, model, path, image_shape)
    return path


def _check_images(image_shape):
    """The images every format is checked on: black, white and two of random pixels."""
    random = np.random.default_rng(0).integers(0, 256, size=(2, *image_shape), dtype=np.uint8)
    extremes = np.stack([np.zeros(image_shape, np.uint8), np.full(image_shape, 255, np.uint8)])
    return np.concatenate([extremes, random])


def _max_abs_diff(path, fmt, images, expected):
    loaded = load(path, format=fmt)
    try:
        return float(np.abs(predict(loaded, images) - expected).max())
    finally:
        del loaded  # a SavedModel or an interpreter holds memory and files


def _one_line(err):
    text = " ".join(str(err).split()) or type(err).__name__
    return f"{type(err).__name__}: {text[:400]}"


def _remove(path):
    if path.is_dir():
        shutil.rmtree(path)
    elif path.exists():
        path.unlink()


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
