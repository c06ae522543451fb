"""Small models, images and script loading shared by the export and predict tests."""

import importlib.util
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
    """Import scripts/<name>.py as a module (its main(argv) is what the tests call)."""
    monkeypatch.setenv("KERAS_BACKEND", keras.backend.backend())  # restored after the test
    spec = importlib.util.spec_from_file_location(f"script_{name}", REPO / "scripts" / f"{name}.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module
