"""Small models, images and the subcommands shared by the export and predict tests."""

import importlib
import pathlib

import keras
import numpy as np

import keras_attn

REPO = pathlib.Path(__file__).resolve().parents[1]
SPECS = {
    # Another input spec: grayscale, another size, five classes.
    "cnn_linear_ae": {"input_shape": (28, 28, 1), "num_classes": 5},
    # A last transposed convolution narrower than its stride (site 3, 15x15): the
    # geometry that gave ONNX negative pads, now one bias-only row.
    "cnn_conv_ae_he": {"conv_ae": {"final_kernel": 2}},
}
TOL = 1e-5


def small_model(name, **overrides):
    """A registry variant with few filters, same structure (sites, blocks, attention).

    A ResNet keeps its stages and gates with one residual block per stage.
    """
    if keras_attn.get_config(name).get("backbone") == "resnet":
        small = {"depth": 8, "widths": [4, 8, 8]}
    else:
        small = {"blocks": [8, 16, 16] if name == "cnn3" else [8, 16], "dense_units": 16}
    return keras_attn.build(name, **{**small, **SPECS.get(name, {}), **overrides})


def uint8_images(shape, n=3, seed=0):
    return np.random.default_rng(seed).integers(0, 256, size=(n, *shape), dtype=np.uint8)


def reference_predictions(model, images):
    return keras.ops.convert_to_numpy(model(images.astype("float32"), training=False))


def load_script(name, monkeypatch):
    """``keras_attn.cli.<name>``, the module of ``keras-attn <name>`` (its ``main(argv)``).

    KERAS_BACKEND is set to the backend at hand and restored after the test (``export``
    sets it when it runs).
    """
    monkeypatch.setenv("KERAS_BACKEND", keras.backend.backend())
    return importlib.import_module(f"keras_attn.cli.{name}")
