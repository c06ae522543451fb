"""How each format is written: Keras' own exporter first, a converter from the SavedModel next.

Every format but ``.keras`` has one serving signature: uint8 images ``(batch, H, W, C)``
named ``images`` in, class probabilities ``output_0`` out, in inference mode.
`keras_attn.export.export_model` tries a format's converters in order and keeps the
first whose output predicts like the model.
"""

from __future__ import annotations

import warnings

from keras_attn.export.formats import INPUT_NAME, OUTPUT_NAME, check_formats, check_writable

__all__ = ["CONVERTERS", "convert", "converters"]

KERAS_SAVE = "keras.Model.save"
KERAS_SAVED_MODEL = 'keras.Model.export(format="tf_saved_model")'
KERAS_ONNX = 'keras.Model.export(format="onnx")'
KERAS_LITERT = 'keras.Model.export(format="litert")'
TF2ONNX = "tf2onnx.convert.from_function on the SavedModel's serve function"
TFLITE_CONVERTER = "tf.lite.TFLiteConverter.from_saved_model"

#: Each format's converters, in the order they are tried.
CONVERTERS = {
    "keras": (KERAS_SAVE,),
    "saved_model": (KERAS_SAVED_MODEL,),
    "onnx": (KERAS_ONNX, TF2ONNX),
    "tflite": (KERAS_LITERT, TFLITE_CONVERTER),
}
#: The converters that start from a SavedModel of the model (``saved_model=`` of `convert`).
FROM_SAVED_MODEL = (TF2ONNX, TFLITE_CONVERTER)
_KERAS_NAMES = {KERAS_SAVED_MODEL: "tf_saved_model", KERAS_ONNX: "onnx", KERAS_LITERT: "litert"}


def converters(fmt):
    """The converters that can write ``fmt``, in the order `export_model` tries them.

    Keras' own ``model.export`` comes first; ONNX and TFLite fall back to a
    converter run on the model's SavedModel (tf2onnx, the TFLite converter) when
    Keras' exporter fails, is missing from the installed Keras, or writes a
    model that does not predict like the Keras one.

    Args:
        fmt: str, one of `keras_attn.export.FORMATS`.

    Returns:
        tuple of str, the converters' names (as recorded in the model card).

    Example:
    >>> converters("tflite")
    ('keras.Model.export(format="litert")', 'tf.lite.TFLiteConverter.from_saved_model')
    """
    return CONVERTERS[check_formats(fmt)[0]]


def convert(fmt, converter, model, path, image_shape, saved_model=None):
    """Write ``model`` to ``path`` in format ``fmt`` with one of its `converters`.

    Args:
        fmt: str, one of `keras_attn.export.FORMATS`.
        converter: str, one of ``converters(fmt)``.
        model: a built ``keras.Model`` taking images of ``image_shape``.
        path: str or Path, the file (the folder, for ``"saved_model"``) to write.
        image_shape: ``(height, width, channels)``.
        saved_model: str or Path, a SavedModel of ``model`` as
            ``converter`` ``'keras.Model.export(format="tf_saved_model")'`` writes
            it; needed by the converters that start from one (tf2onnx, the
            TFLite converter), ignored by the others.

    Raises:
        ValueError: an unknown converter for ``fmt``, or no ``saved_model``
            for a converter that needs one.
        ImportError, RuntimeError: a package is missing, or the backend is not
            TensorFlow (see `keras_attn.export.check_writable`).
        Exception: whatever the converter raises when it cannot convert the model.

    Example:
    >>> import os, tempfile, keras_attn
    >>> model = keras_attn.build("cnn", blocks=[4], dense_units=4, input_shape=(8, 8, 3))
    >>> path = os.path.join(tempfile.mkdtemp(), "model.keras")
    >>> convert("keras", "keras.Model.save", model, path, (8, 8, 3))
    >>> os.path.isfile(path)
    True
    """
    if converter not in converters(fmt):
        raise ValueError(
            f"`converter` for {fmt!r} must be one of {converters(fmt)}, got {converter!r}."
        )
    if converter in FROM_SAVED_MODEL and saved_model is None:
        raise ValueError(f"{converter} converts a SavedModel: pass `saved_model`, its folder.")
    check_writable([fmt])
    if converter == KERAS_SAVE:
        model.save(path)
        return
    import tensorflow as tf

    signature = [tf.TensorSpec((None, *image_shape), tf.uint8, name=INPUT_NAME)]
    with warnings.catch_warnings():
        # tf2onnx and the TFLite converter warn about NumPy and TensorFlow internals.
        warnings.simplefilter("ignore", FutureWarning)
        warnings.simplefilter("ignore", DeprecationWarning)
        if converter == TF2ONNX:
            _tf2onnx(tf, saved_model, signature, path)
        elif converter == TFLITE_CONVERTER:
            _tflite_converter(tf, saved_model, path)
        else:
            keras_format = _KERAS_NAMES[converter]
            model.export(str(path), format=keras_format, input_signature=signature, verbose=False)
    if fmt == "onnx":
        _name_onnx_output(path)


def _tf2onnx(tf, saved_model, signature, path):
    """tf2onnx on the SavedModel's ``serve`` function (what ``python -m tf2onnx.convert`` does)."""
    import tf2onnx

    try:  # tf2onnx 1.17 still uses np.object; Keras patches it before calling tf2onnx too.
        from keras.src.export.tf2onnx_lib import patch_tf2onnx
    except ImportError:  # pragma: no cover - depends on the Keras version
        pass
    else:
        patch_tf2onnx()
    loaded = tf.saved_model.load(str(saved_model))  # keep a reference while converting
    tf2onnx.convert.from_function(loaded.serve, input_signature=signature, output_path=str(path))


def _tflite_converter(tf, saved_model, path):
    """The TFLite converter on the SavedModel's ``serving_default`` signature, builtin ops only."""
    converter = tf.lite.TFLiteConverter.from_saved_model(
        str(saved_model), signature_keys=["serving_default"]
    )
    converter.target_spec.supported_ops = [tf.lite.OpsSet.TFLITE_BUILTINS]
    with open(path, "wb") as f:
        f.write(converter.convert())


def _name_onnx_output(path):
    """Name the ONNX graph's output `OUTPUT_NAME` and its batch axes ``batch``, as elsewhere."""
    import onnx

    model = onnx.load(str(path))
    graph = model.graph
    old = graph.output[0].name
    for node in graph.node:
        node.output[:] = [OUTPUT_NAME if name == old else name for name in node.output]
        node.input[:] = [OUTPUT_NAME if name == old else name for name in node.input]
    graph.output[0].name = OUTPUT_NAME
    for value in (*graph.input, *graph.output):
        dims = value.type.tensor_type.shape.dim
        if dims and not dims[0].HasField("dim_value"):
            dims[0].dim_param = "batch"
    onnx.checker.check_model(model)
    onnx.save(model, str(path))
