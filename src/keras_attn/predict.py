"""Images to predictions: decode image files, fit them to a model's input, classify them.

Works with every format `keras_attn.export.load` returns (Keras model, SavedModel,
ONNX Runtime session, TFLite interpreter); nothing here imports TensorFlow.
"""

from __future__ import annotations

from pathlib import Path

import keras
import numpy as np

__all__ = [
    "RESIZE_MODES",
    "fit_image",
    "image_shape",
    "load_images",
    "predict",
    "read_image",
    "top_k",
]

#: How an image of another size than the model's is brought to it (see `fit_image`).
RESIZE_MODES = ("crop", "stretch", "none")


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
    >>> import os, tempfile
    >>> from PIL import Image
    >>> path = os.path.join(tempfile.mkdtemp(), "gray.png")
    >>> Image.new("L", (40, 30), 128).save(path)
    >>> image = read_image(path)
    >>> image.shape, image.dtype.name, int(image[0, 0, 0])
    ((30, 40, 3), 'uint8', 128)
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
    >>> import os, tempfile
    >>> from PIL import Image
    >>> path = os.path.join(tempfile.mkdtemp(), "cat.png")
    >>> Image.new("RGB", (64, 48), "orange").save(path)
    >>> images, notes = load_images([path], (32, 32, 3))
    >>> images.shape, notes[0].split("; ")[1]
    ((1, 32, 32, 3), 'center-cropped and resized to 32x32')
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


def _runner(model):
    """``(kind, image shape or None, call)``: how to run one batch of uint8 images."""
    if isinstance(model, keras.Model):
        return (
            "model",
            tuple(model.input_shape[1:]),
            lambda x: keras.ops.convert_to_numpy(model(x.astype("float32"), training=False)),
        )
    if hasattr(model, "serve"):  # tf.saved_model.load
        spec = model.serve.input_signature[0] if model.serve.input_signature else None
        shape = tuple(spec.shape[1:]) if spec is not None else None
        return "SavedModel", shape, lambda x: model.serve(x).numpy()
    if hasattr(model, "get_inputs") and hasattr(model, "run"):  # onnxruntime.InferenceSession
        spec = model.get_inputs()[0]
        shape = tuple(d if isinstance(d, int) else None for d in spec.shape[1:])
        return "ONNX model", shape, lambda x: model.run(None, {spec.name: x})[0]
    if hasattr(model, "get_signature_runner"):  # a TFLite (LiteRT) Interpreter
        runner = model.get_signature_runner()
        name, spec = next(iter(runner.get_input_details().items()))
        shape = tuple(int(d) for d in spec["shape_signature"][1:])
        return "TFLite model", shape, lambda x: next(iter(runner(**{name: x}).values()))
    raise ValueError(
        "`model` must be a keras.Model, a loaded SavedModel (with a `serve` signature), an "
        "onnxruntime.InferenceSession or a TFLite Interpreter (keras_attn.export.load returns "
        f"one of them), got {type(model).__name__}."
    )


def image_shape(model):
    """The ``(height, width, channels)`` a loaded model takes (None where any size goes).

    Args:
        model: anything `predict` accepts.

    Example:
    >>> import keras_attn
    >>> image_shape(keras_attn.build("cnn", blocks=[4], input_shape=(8, 8, 3)))
    (8, 8, 3)
    """
    return _runner(model)[1]


def predict(model, images, batch_size=256):
    """Class probabilities for uint8 images, from any format `keras_attn.export.load` returns.

    Args:
        model: a ``keras.Model`` (``.keras``), a loaded SavedModel (its ``serve``
            signature), an ``onnxruntime.InferenceSession`` or a TFLite
            ``Interpreter`` (its signature runner).
        images: uint8 array ``(n, height, width, channels)`` of the model's size
            (see `load_images`).
        batch_size: int, default 256.

    Returns:
        float32 array ``(n, num_classes)``.

    Raises:
        ValueError: ``images`` is not a uint8 batch of the model's size, or
            ``model`` is none of the above.

    Example:
    >>> import numpy as np, keras_attn
    >>> model = keras_attn.build("cnn", blocks=[4], dense_units=4, input_shape=(8, 8, 3),
    ...                          num_classes=3)
    >>> probs = predict(model, np.zeros((2, 8, 8, 3), "uint8"))
    >>> probs.shape, bool(np.allclose(probs.sum(axis=1), 1))
    ((2, 3), True)
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
    kind, expected, run = _runner(model)
    got = tuple(images.shape[1:])
    if expected is not None and any(e is not None and e != g for e, g in zip(expected, got)):
        article = "The model" if kind == "model" else f"The {kind}"
        raise ValueError(
            f"{article} takes images {expected}, got {got}; use load_images(..., resize='crop')."
        )
    outputs = [run(images[i : i + batch_size]) for i in range(0, len(images), batch_size)]
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
