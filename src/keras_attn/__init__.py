"""keras_attn: attention for image classification, as a Keras 3 model zoo.

Build a CNN or a CIFAR ResNet with channel, spatial or autoencoder-style
attention by name, or put a gate into your own functional model::

    import keras_attn
    model = keras_attn.build("cnn_conv_ae_eca")
    resnet = keras_attn.build("resnet20", attention="cbam", sites=[7, 8, 9])
    keras_attn.list_models()
    mine = keras_attn.insert_attention(my_model, "eca", after="blocks", start="identity")
    shared = keras_attn.load_pretrained("saved_models/cnn_eca")  # or https://..., hf://...
"""

import importlib
import sys
from typing import TYPE_CHECKING

if TYPE_CHECKING:  # imported on first use (below), so that importing keras_attn loads no Keras
    from keras_attn import layers
    from keras_attn.backbone import AttentionCNN, count_trainable_params
    from keras_attn.insert import insert_attention
    from keras_attn.pretrained.loading import load_pretrained
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
    >>> import os, tempfile, keras_attn
    >>> path = os.path.join(tempfile.mkdtemp(), "tiny.keras")
    >>> keras_attn.build("cnn", blocks=[4], dense_units=4, input_shape=(8, 8, 3)).save(path)
    >>> load(path).name
    'cnn'
    """
    from keras_attn import export

    return export.load(path, **kwargs)


#: Public name -> the module it comes from, imported when the name is first used: the
#: command line (`keras_attn.cli`) picks Keras' backend before Keras is loaded.
_LAZY = {
    "layers": "keras_attn.layers",
    "AttentionCNN": "keras_attn.backbone",
    "count_trainable_params": "keras_attn.backbone",
    "insert_attention": "keras_attn.insert",
    "load_pretrained": "keras_attn.pretrained.loading",
    "build": "keras_attn.zoo",
    "get_config": "keras_attn.zoo",
    "list_models": "keras_attn.zoo",
    "register": "keras_attn.zoo",
}


def _import(module):
    try:
        return importlib.import_module(module)
    except ModuleNotFoundError as e:  # pragma: no cover - depends on the environment
        if e.name not in ("tensorflow", "jax", "torch"):
            raise
        raise ImportError(
            f'Keras\' backend {e.name!r} is not installed: pip install "keras_attn[cpu]" '
            '(TensorFlow), "keras_attn[jax]" or "keras_attn[jax-cuda]", or set KERAS_BACKEND '
            "to an installed backend (jax, tensorflow, torch)."
        ) from None


def __getattr__(name):
    if name not in _LAZY:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    module = _import(_LAZY[name])
    value = module if name == "layers" else getattr(module, name)
    globals()[name] = value
    return value


def __dir__():
    return sorted(set(globals()) | set(_LAZY))


if "keras" in sys.modules:  # Keras' backend is fixed: register keras_attn's classes now, so
    for _name in _LAZY:  # keras.saving.load_model finds them after `import keras_attn`
        __getattr__(_name)


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
    "load_pretrained",
    "register",
]
