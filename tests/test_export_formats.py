"""Every gate and backbone in every format (.keras, SavedModel, ONNX, TFLite): exported once
(checked at export, the differences in its card), then loaded back with each format's own
runtime (keras.saving, tf.saved_model, onnxruntime, the LiteRT interpreter) and compared
with the Keras model on other images; the fallback converters; a format that fails.

Models are small (8/16 filters, 16 dense units, every insertion site of the registered
variant, several gates each) and untrained: equality of predictions in inference mode is
what is tested.
"""

import time

import keras
import numpy as np
import pytest
from export_helpers import TOL, reference_predictions, small_model, uint8_images

import keras_attn
from keras_attn import export
from keras_attn.backbone import count_trainable_params
from keras_attn.export import conversion, writer
from keras_attn.export.formats import FILES, FORMATS
from keras_attn.predict import predict

# Every gate and both backbones, each at least once, in four exports (one export costs about
# the same whatever its gates): the CNN's three-block form with CBAM and the linear AE on
# grayscale images and five classes; the conv-AE with its logit scale and a last transposed
# convolution narrower than its stride (the geometry that gave ONNX negative pads) before the
# constant gate; ECA, CBAM's spatial gate and the study's conv-AE; the ResNet with a channel
# and a spatial gate. Label: (registry variant, overrides). The literature gates are exported
# in test_layers_literature.py.
EXPORTS = {
    "cnn3_cbam_linear_ae": (
        "cnn3",
        {"attention": ["cbam", "linear_ae"], "input_shape": (28, 28, 1), "num_classes": 5},
    ),
    "cnn_conv_ae_he_const": (
        "cnn_conv_ae_he",
        {"attention": ["conv_ae", "constant"], "conv_ae": {"final_kernel": 2}},
    ),
    "cnn_eca_cbam_spatial_conv_ae": (
        "cnn_conv_ae_eca",
        {"attention": ["eca", "cbam_spatial", "conv_ae"]},
    ),
    "resnet20_cbam_conv_ae": ("resnet20_cbam", {"attention": ["cbam", "conv_ae"]}),
}
LABELS = list(EXPORTS)
FORMATS_MISSING = [f for f in FORMATS if export.install_hint(f)]
pytestmark = pytest.mark.skipif(
    keras.backend.backend() != "tensorflow" or bool(FORMATS_MISSING),
    reason="exporting every format needs the TF backend and the export packages: "
    + ("; ".join(export.install_hint(f) for f in FORMATS_MISSING) or "TF backend"),
)


class _Export:
    def __init__(self, folder, model, card, seconds):
        self.folder, self.model, self.card, self.seconds = folder, model, card, seconds


@pytest.fixture(scope="module")
def exported(tmp_path_factory):
    """``exported(name)``: the variant exported once in every format (on first use)."""
    root = tmp_path_factory.mktemp("exports")
    done = {}

    def get(name):
        if name not in done:
            keras.utils.set_random_seed(LABELS.index(name))
            variant, overrides = EXPORTS[name]
            model = small_model(variant, **overrides)
            names = [f"class_{c}" for c in range(model.output_shape[-1])]
            t0 = time.perf_counter()
            try:
                card = export.export_model(model, root / name, class_names=names)
                done[name] = _Export(root / name, model, card, time.perf_counter() - t0)
            except Exception as err:  # every test of this variant reports it
                done[name] = err
        if isinstance(done[name], Exception):
            raise done[name]
        return done[name]

    yield get
    print(f"\n{'export':<30}" + "".join(f"{f:>13}" for f in FORMATS) + "  export s")
    for name, ex in done.items():
        if isinstance(ex, _Export):
            diffs = ex.card["verified_max_abs_diff"]
            row = "".join(f"{diffs[f]:>13.1e}" for f in FORMATS)
            print(f"{name:<30}{row}  {ex.seconds:8.1f}")


@pytest.mark.parametrize("name", LABELS)
def test_every_format_is_written_checked_and_described_in_the_card(exported, name):
    ex = exported(name)
    folder, model, card = ex.folder, ex.model, ex.card
    assert (folder / "model.keras").is_file()
    assert (folder / "saved_model" / "saved_model.pb").is_file()
    assert (folder / "model.onnx").is_file() and (folder / "model.tflite").is_file()
    written = sorted(p.name for p in folder.iterdir())
    assert written == sorted([*FILES.values(), "model.json"])
    for part in ("saved_model", "model.onnx", "model.tflite"):
        assert card == export.load_card(folder / part)
    assert card["name"] == EXPORTS[name][0] and card["config"] == model.model_config
    assert card["trainable_params"] == count_trainable_params(model)
    num_classes = model.output_shape[-1]
    assert card["class_names"] == [f"class_{c}" for c in range(num_classes)]
    assert card["input"]["shape"] == [None, *model.input_shape[1:]]
    assert card["input"]["dtype"] == "uint8" and card["input"]["name"] == "images"
    assert card["output"]["shape"] == [None, num_classes]
    assert card["files"] == FILES and set(card["runtimes"]) == set(FORMATS)
    assert card["signatures"] == ["serve", "serving_default"] and card["record"] is None
    assert {"keras_attn", "keras", "numpy", "python"} <= set(card["versions"])
    # Checked at export, every format, within the tolerance; with the converter that wrote it
    # (Keras' own first; a fallback only with the reasons the earlier ones were passed over).
    diffs = card["verified_max_abs_diff"]
    assert set(diffs) == set(FORMATS) and all(0 <= d <= TOL for d in diffs.values()), diffs
    for fmt in FORMATS:
        used = export.converters(fmt).index(card["converters"][fmt])
        assert len(card["rejected_converters"].get(fmt, [])) == used, card["rejected_converters"]


@pytest.mark.parametrize("name", LABELS)
def test_every_format_runs_in_its_own_runtime_like_the_keras_model(exported, name):
    """What a serving user does: each runtime's own API, uint8 images in, probabilities out."""
    import onnxruntime as ort
    import tensorflow as tf

    try:
        from ai_edge_litert.interpreter import Interpreter
    except ImportError:  # the LiteRT package is optional where TensorFlow is installed
        Interpreter = tf.lite.Interpreter
    ex = exported(name)
    images = uint8_images(ex.model.input_shape[1:], n=3, seed=100 + LABELS.index(name))
    expected = reference_predictions(ex.model, images)
    got = {}

    keras_model = keras.saving.load_model(ex.folder / "model.keras")
    assert type(keras_model) is type(ex.model)
    got["keras"] = keras.ops.convert_to_numpy(keras_model(images.astype("float32")))

    served = tf.saved_model.load(str(ex.folder / "saved_model"))  # keep the reference
    got["serve"] = served.serve(tf.constant(images)).numpy()
    default = served.signatures["serving_default"]
    spec = default.structured_input_signature[1]["images"]
    assert spec.dtype == tf.uint8 and spec.shape[0] is None, spec
    got["serving_default"] = default(images=tf.constant(images))["output_0"].numpy()

    session = ort.InferenceSession(str(ex.folder / "model.onnx"))
    (inp,), (out,) = session.get_inputs(), session.get_outputs()
    assert (inp.name, inp.type, inp.shape[0], out.name) == (
        "images",
        "tensor(uint8)",
        "batch",
        "output_0",
    )
    got["onnx"] = session.run(["output_0"], {"images": images})[0]
    got["onnx, one image"] = session.run(["output_0"], {"images": images[:1]})[0]

    runner = Interpreter(model_path=str(ex.folder / "model.tflite")).get_signature_runner()
    assert list(runner.get_input_details()) == ["images"]
    assert runner.get_input_details()["images"]["dtype"] == np.uint8
    got["tflite"] = runner(images=images)["output_0"]
    got["tflite, one image"] = runner(images=images[:1])["output_0"]

    for what, probs in got.items():
        want = expected[:1] if "one image" in what else expected
        np.testing.assert_allclose(probs, want, atol=TOL, rtol=0, err_msg=what)


def test_load_takes_the_folder_or_any_of_its_files(exported):
    ex = exported("cnn_eca_cbam_spatial_conv_ae")
    images = uint8_images((32, 32, 3), seed=7)
    expected = reference_predictions(ex.model, images)
    for fmt in FORMATS:
        for path, how in ((ex.folder, fmt), (ex.folder / FILES[fmt], "auto")):
            loaded = keras_attn.load(path, format=how)
            np.testing.assert_allclose(predict(loaded, images), expected, atol=TOL, rtol=0)
        with pytest.raises(ValueError, match=r"takes images \(32, 32, 3\), got \(9, 9, 3\)"):
            predict(loaded, uint8_images((9, 9, 3)))
    assert isinstance(keras_attn.load(ex.folder), keras_attn.AttentionCNN)  # auto: the .keras


def test_conv_ae_onnx_graphs_have_no_negative_pads(exported):
    import onnx

    for name in [n for n, (_, o) in EXPORTS.items() if "conv_ae" in o["attention"]]:
        graph = onnx.load(str(exported(name).folder / "model.onnx")).graph
        transposed = [node for node in graph.node if node.op_type == "ConvTranspose"]
        assert transposed, name
        for node in transposed:
            pads = [list(a.ints) for a in node.attribute if a.name == "pads"]
            assert all(p >= 0 for p in sum(pads, [])), (name, node.name, pads)


# --------------------------------------------------------------------------- fallbacks


def test_onnx_and_tflite_fall_back_to_converters_on_the_saved_model(tmp_path, monkeypatch):
    """Keras' ONNX exporter writes a wrong model, and this Keras has no LiteRT exporter."""
    model = small_model("cnn", blocks=[4, 8], dense_units=8)
    other = small_model("cnn", blocks=[4, 8], dense_units=8)  # other weights: wrong outputs
    export_as_keras_does = keras.Model.export

    def fake_export(self, filepath, format="tf_saved_model", **kwargs):
        if format == "litert":
            raise ValueError(f"Unrecognized format={format}. Supported formats are: [...]")
        if format == "onnx":
            return export_as_keras_does(other, filepath, format=format, **kwargs)
        return export_as_keras_does(self, filepath, format=format, **kwargs)

    monkeypatch.setattr(keras.Model, "export", fake_export)
    card = export.export_model(model, tmp_path / "m", formats=["onnx", "tflite"])
    assert card["files"] == {"onnx": "model.onnx", "tflite": "model.tflite"}
    assert card["converters"] == {
        "onnx": conversion.TF2ONNX,
        "tflite": conversion.TFLITE_CONVERTER,
    }
    (onnx_reason,) = card["rejected_converters"]["onnx"]
    assert onnx_reason.startswith('keras.Model.export(format="onnx") wrote a model whose ')
    assert "differ by up to" in onnx_reason and "tolerance 1e-05" in onnx_reason
    (tflite_reason,) = card["rejected_converters"]["tflite"]
    assert "failed: ValueError: Unrecognized format=litert" in tflite_reason
    assert all(d <= TOL for d in card["verified_max_abs_diff"].values())
    assert sorted(p.name for p in (tmp_path / "m").iterdir()) == [
        "model.json",
        "model.onnx",
        "model.tflite",
    ]  # the SavedModel the fallbacks converted is not left behind
    images = uint8_images((32, 32, 3))
    for fmt in ("onnx", "tflite"):
        loaded = keras_attn.load(tmp_path / "m", format=fmt)
        np.testing.assert_allclose(
            predict(loaded, images), reference_predictions(model, images), atol=TOL, rtol=0
        )


def test_a_format_no_converter_writes_faithfully_fails_the_export_clearly(tmp_path, monkeypatch):
    real_convert = writer.convert

    def broken_tflite(fmt, converter, model, path, image_shape, saved_model=None):
        if fmt == "tflite":
            path.write_bytes(b"not a TFLite model")
        elif path.name.startswith(".saved_model"):  # the SavedModel the fallback converts
            path.mkdir()
        else:
            real_convert(fmt, converter, model, path, image_shape, saved_model)

    monkeypatch.setattr(writer, "convert", broken_tflite)
    out = tmp_path / "new"
    with pytest.raises(RuntimeError) as info:
        export.export_model(small_model("cnn"), out, formats=["keras", "tflite"])
    message = str(info.value)
    assert message.startswith(f"Could not export 'cnn' to {out} in tflite; nothing was written:")
    assert '  tflite: keras.Model.export(format="litert") wrote a model that ' in message
    assert "  tflite: tf.lite.TFLiteConverter.from_saved_model wrote a model that " in message
    assert "These passed: keras (largest difference 0.0e+00)" in message
    assert "formats=['keras'] (--formats keras)" in message
    assert not out.exists()


def test_a_model_with_inserted_gates_in_every_format(tmp_path):
    """`keras_attn.insert_attention` on a plain functional model: every format, checked."""
    inputs = keras.Input((16, 16, 3))
    x = keras.layers.Rescaling(1 / 255)(inputs)
    x = keras.layers.Conv2D(4, 3, padding="same", name="conv_a")(x)
    x = keras.layers.BatchNormalization(name="bn_a")(x)
    x = keras.layers.Conv2D(8, 3, strides=2, name="conv_b")(x)
    x = keras.layers.GlobalAveragePooling2D()(x)
    outputs = keras.layers.Dense(3, activation="softmax")(x)
    base = keras.Model(inputs, outputs, name="mine")
    model = keras_attn.insert_attention(base, ["se", "cbam"], after=["bn_a", "conv_b"])
    card = export.export_model(model, tmp_path / "mine")
    diffs = card["verified_max_abs_diff"]
    assert set(diffs) == set(FORMATS) and all(d <= TOL for d in diffs.values()), diffs
    images = uint8_images((16, 16, 3), seed=5)
    expected = reference_predictions(model, images)
    for fmt in FORMATS:
        loaded = keras_attn.load(tmp_path / "mine", format=fmt)
        np.testing.assert_allclose(predict(loaded, images), expected, atol=TOL, rtol=0)
