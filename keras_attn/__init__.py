"""keras_attn: attention for image classification, as a Keras 3 model zoo.

Build a CNN or a CIFAR ResNet with channel, spatial or autoencoder-style
attention by name, or put a gate into your own functional model::

    import keras_attn
    model = keras_attn.build("cnn_conv_ae_eca")
    resnet = keras_attn.build("resnet20", attention="cbam", sites=[7, 8, 9])
    keras_attn.list_models()
    mine = keras_attn.insert_attention(my_model, "eca", after=["block_3_conv"])
"""

try:
    import keras  # noqa: F401 - fails here when Keras' backend is not installed
except ModuleNotFoundError as e:  # pragma: no cover - depends on the environment
    if e.name not in ("tensorflow", "jax", "torch"):
        raise
    raise ImportError(
        f'Keras\' backend {e.name!r} is not installed: pip install "keras_attn[cpu]" '
        '(TensorFlow), "keras_attn[jax]" or "keras_attn[jax-cuda]", or set KERAS_BACKEND '
        "to an installed backend (jax, tensorflow, torch)."
    ) from None

from keras_attn import layers
from keras_attn.backbone import AttentionCNN, count_trainable_params
from keras_attn.insert import insert_attention
from keras_attn.zoo import build, get_config, list_models, register

__version__ = "0.1.0"


def load(path, **kwargs):
    """Load a model saved by keras_attn: a ``.keras`` file, an export folder or one of its files.

    Args:
        path: str, a ``.keras`` file, or a folder written by
            ``keras_attn.export`` (its ``.keras`` file is used when present,
            else its SavedModel, ONNX or TFLite model), or one of those files.
        **kwargs: passed to `keras_attn.export.load` (e.g. ``format="onnx"``).

    Returns:
        A ``keras.Model`` (``.keras``), or the format's runtime object.

    Example:
    >>> import os, tempfile
    >>> path = os.path.join(tempfile.mkdtemp(), "tiny.keras")
    >>> build("cnn", blocks=[4], dense_units=4, input_shape=(8, 8, 3)).save(path)
    >>> load(path).name
    'cnn'
    """
    from keras_attn import export

    return export.load(path, **kwargs)


__all__ = [
    "AttentionCNN",
    "__version__",
    "build",
    "count_trainable_params",
    "get_config",
    "insert_attention",
    "layers",
    "list_models",
    "load",
    "register",
]
