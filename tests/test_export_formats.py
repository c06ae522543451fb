"""Every variant in every format (.keras, SavedModel, ONNX, TFLite): written with its card,
loaded back with each format's own runtime (also in a process that never imports
keras_attn), equal to the Keras model within 1e-5; a JAX-trained .keras file exported from
TensorFlow; and export without TensorFlow.

Models are small (8/16 filters, 16 dense units) and untrained: equality of predictions
in inference mode is what is tested, not accuracy.
"""

import importlib.util
import json
import os
import subprocess
import sys
import textwrap

import keras
import numpy as np
import pytest
from export_helpers import REPO, TOL, reference_predictions, small_model, uint8_images

import keras_attn
from keras_attn import export
from keras_attn.backbone import count_trainable_params
from keras_attn.predict import predict

VARIANTS = list(keras_attn.list_models())


needs_tf = pytest.mark.skipif(
    keras.backend.backend() != "tensorflow", reason="SavedModel export needs the TF backend"
)
FORMATS_MISSING = [f for f in export.FORMATS if export.install_hint(f)]
needs_all_formats = pytest.mark.skipif(
    bool(FORMATS_MISSING),
    reason="; ".join(export.install_hint(f) for f in FORMATS_MISSING) or "all installed",
)


@pytest.fixture(scope="module")
def exported(tmp_path_factory):
    """Every variant exported once in every format: name -> (folder, model, images, expected)."""
    if keras.backend.backend() != "tensorflow" or FORMATS_MISSING:
        pytest.skip("exporting every format needs the TF backend and the export packages")
    root = tmp_path_factory.mktemp("exports")
    out = {}
    for i, name in enumerate(VARIANTS):
        keras.utils.set_random_seed(i)
        model = small_model(name)
        num_classes = model.output_shape[-1]
        names = [f"class_{c}" for c in range(num_classes)]
        # The checks inside export run once here; the tests below do them for all.
        verify = name == "cnn_conv_ae_eca"
        export.export_model(model, root / name, class_names=names, verify=verify)
        images = uint8_images(model.input_shape[1:], seed=i)
        out[name] = (root / name, model, images, reference_predictions(model, images))
    return out


@needs_tf
@needs_all_formats
@pytest.mark.parametrize("name", VARIANTS)
def test_export_writes_every_format_and_a_card(exported, name):
    folder, model, _, _ = exported[name]
    assert (folder / "model.keras").is_file()
    assert (folder / "saved_model" / "saved_model.pb").is_file()
    assert (folder / "model.onnx").is_file() and (folder / "model.tflite").is_file()
    assert not [p for p in folder.iterdir() if p.name.startswith(".export-")]
    card = json.loads((folder / "model.json").read_text())
    for part in ("saved_model", "model.onnx", "model.tflite"):
        assert card == export.load_card(folder / part)
    assert card["name"] == name
    assert card["config"] == model.model_config
    assert card["trainable_params"] == count_trainable_params(model)
    num_classes = model.output_shape[-1]
    assert card["class_names"] == [f"class_{c}" for c in range(num_classes)]
    assert card["input"]["shape"] == [None, *model.input_shape[1:]]
    assert card["input"]["dtype"] == "uint8" and card["input"]["name"] == "images"
    assert card["output"]["shape"] == [None, num_classes]
    assert card["files"] == export.FILES
    assert set(card["runtimes"]) == set(export.FORMATS)
    assert card["signatures"] == ["serve", "serving_default"]
    assert card["record"] is None
    assert {"keras_attn", "keras", "numpy", "python"} <= set(card["versions"])
    if name == "cnn_conv_ae_eca":
        assert set(card["verified_max_abs_diff"]) == set(export.FORMATS)
        assert all(v <= TOL for v in card["verified_max_abs_diff"].values())
    else:
        assert card["verified_max_abs_diff"] is None


@needs_tf
@needs_all_formats
@pytest.mark.parametrize("name", VARIANTS)
def test_every_format_loads_back_with_equal_predictions(exported, name):
    folder, _, images, expected = exported[name]
    other_size = uint8_images((9, 9, images.shape[-1]))
    for fmt in export.FORMATS:
        for path, how in ((folder, fmt), (folder / export.FILES[fmt], "auto")):
            loaded = keras_attn.load(path, format=how)
            if fmt == "keras":
                assert isinstance(loaded, keras_attn.AttentionCNN)
            np.testing.assert_allclose(predict(loaded, images), expected, atol=TOL, rtol=0)
        with pytest.raises(ValueError, match=r"takes images \(\d+, \d+, \d\), got \(9, 9"):
            predict(loaded, other_size)
    assert isinstance(keras_attn.load(folder), keras_attn.AttentionCNN)  # auto: the .keras


@needs_tf
@needs_all_formats
def test_formats_load_in_a_process_without_keras_attn(exported, tmp_path):
    """What a serving user does: each format's own runtime, uint8 images in, probabilities out."""
    cases = {}
    for name, (folder, _, images, expected) in exported.items():
        np.save(tmp_path / f"{name}_x.npy", images)
        np.save(tmp_path / f"{name}_y.npy", expected)
        cases[name] = str(folder)
    script = textwrap.dedent(
        """
        import json, sys
        import numpy as np
        import onnxruntime as ort
        import tensorflow as tf
        try:
            from ai_edge_litert.interpreter import Interpreter
        except ImportError:
            Interpreter = tf.lite.Interpreter
        cases, data = json.loads(sys.argv[1]), sys.argv[2]
        diffs = {}
        for name, folder in cases.items():
            x = np.load(f"{data}/{name}_x.npy")
            y = np.load(f"{data}/{name}_y.npy")
            m = tf.saved_model.load(f"{folder}/saved_model")  # keep a reference while calling it
            serve = m.serve(tf.constant(x)).numpy()
            default = m.signatures["serving_default"](images=tf.constant(x))["output_0"].numpy()
            spec = m.signatures["serving_default"].structured_input_signature[1]["images"]
            assert spec.dtype == tf.uint8 and spec.shape[0] is None, spec
            session = ort.InferenceSession(f"{folder}/model.onnx")
            (inp,), (out,) = session.get_inputs(), session.get_outputs()
            assert (inp.name, inp.type, inp.shape[0]) == ("images", "tensor(uint8)", "batch")
            assert out.name == "output_0", out.name
            onnx = session.run(["output_0"], {"images": x})[0]
            runner = Interpreter(model_path=f"{folder}/model.tflite").get_signature_runner()
            tflite = runner(images=x)["output_0"]
            diffs[name] = [float(np.abs(a - y).max()) for a in (serve, default, onnx, tflite)]
        assert "keras_attn" not in sys.modules, "keras_attn was imported"
        print(json.dumps(diffs))
        """
    )
    env = {**os.environ, "TF_CPP_MIN_LOG_LEVEL": "3"}
    result = subprocess.run(
        [sys.executable, "-c", script, json.dumps(cases), str(tmp_path)],
        capture_output=True,
        text=True,
        env=env,
        cwd=tmp_path,
        timeout=600,
    )
    assert result.returncode == 0, result.stderr[-3000:]
    diffs = json.loads(result.stdout.strip().splitlines()[-1])
    assert set(diffs) == set(VARIANTS)
    assert all(d <= TOL for four in diffs.values() for d in four), diffs


@needs_tf
@needs_all_formats
def test_conv_ae_onnx_graphs_have_no_negative_pads(exported):
    import onnx

    for name in [n for n in VARIANTS if "conv_ae" in keras_attn.get_config(n)["attention"]]:
        graph = onnx.load(str(exported[name][0] / "model.onnx")).graph
        transposed = [node for node in graph.node if node.op_type == "ConvTranspose"]
        assert transposed, name
        for node in transposed:
            pads = [list(a.ints) for a in node.attribute if a.name == "pads"]
            assert all(p >= 0 for p in sum(pads, [])), (name, node.name, pads)


@needs_tf
@pytest.mark.skipif(importlib.util.find_spec("jax") is None, reason="jax is not installed")
def test_model_trained_on_jax_loads_on_tensorflow_and_exports(tmp_path):
    script = textwrap.dedent(
        """
        import sys
        import keras, numpy as np
        import keras_attn
        assert keras.backend.backend() == "jax"
        keras.utils.set_random_seed(0)
        model = keras_attn.build("cnn_cbam_spatial_eca", blocks=[8, 16], dense_units=16)
        model.compile(keras.optimizers.SGD(0.01), "sparse_categorical_crossentropy")
        rng = np.random.default_rng(0)
        x = rng.integers(0, 256, size=(8, 32, 32, 3)).astype("float32")
        model.fit(x, rng.integers(0, 10, size=8), batch_size=8, epochs=1, verbose=0)
        out = sys.argv[1]
        model.save(f"{out}/jax_model.keras")
        np.save(f"{out}/x.npy", x.astype("uint8"))
        np.save(f"{out}/y.npy", model.predict(x, verbose=0))
        """
    )
    env = {
        **os.environ,
        "KERAS_BACKEND": "jax",
        "JAX_PLATFORMS": "cpu",
        # Unoptimised XLA compiles the many tiny programs of a build several times faster;
        # numerics are the same within the tolerance checked here.
        "XLA_FLAGS": "--xla_backend_optimization_level=0",
        "TF_CPP_MIN_LOG_LEVEL": "3",
    }
    result = subprocess.run(
        [sys.executable, "-c", script, str(tmp_path)],
        capture_output=True,
        text=True,
        env=env,
        timeout=600,
    )
    assert result.returncode == 0, result.stderr[-3000:]
    x, y = np.load(tmp_path / "x.npy"), np.load(tmp_path / "y.npy")

    model = keras_attn.load(tmp_path / "jax_model.keras")
    np.testing.assert_allclose(predict(model, x), y, atol=TOL, rtol=0)
    card = export.export_model(model, tmp_path / "export", formats=("keras", "saved_model"))
    assert card["versions"]["keras_backend"] == "tensorflow"
    served = keras_attn.load(tmp_path / "export", format="saved_model")
    np.testing.assert_allclose(predict(served, x), y, atol=TOL, rtol=0)


# --------------------------------------------------------------------------- without TensorFlow

# As if TensorFlow were not installed: importing it, or looking for it, fails.
HIDE_TENSORFLOW = """
import sys
class _NoTensorFlow:
    def find_spec(self, name, path=None, target=None):
        if name.split(".")[0] == "tensorflow":
            raise ModuleNotFoundError("No module named 'tensorflow'", name="tensorflow")
sys.meta_path.insert(0, _NoTensorFlow())
"""
NO_TENSORFLOW = (
    HIDE_TENSORFLOW
    + """
import runpy
sys.argv = ["scripts/export.py", *sys.argv[1:]]
runpy.run_path(sys.argv[0], run_name="__main__")
"""
)


@pytest.mark.skipif(importlib.util.find_spec("jax") is None, reason="jax is not installed")
def test_without_tensorflow_the_script_exports_keras_and_says_what_needs_it(tmp_path):
    model = small_model("cnn_eca")
    model.save(tmp_path / "mine.keras")
    (tmp_path / "saved_model").mkdir()
    (tmp_path / "saved_model" / "saved_model.pb").write_bytes(b"")
    env = {k: v for k, v in os.environ.items() if k != "KERAS_BACKEND"}
    env.update(JAX_PLATFORMS="cpu", TF_CPP_MIN_LOG_LEVEL="3")
    check = HIDE_TENSORFLOW + textwrap.dedent(
        """
        import os
        os.environ["KERAS_BACKEND"] = "jax"
        import keras, keras_attn
        from keras_attn.export import load, export_model
        assert keras.backend.backend() == "jax", keras.backend.backend()
        model = load(sys.argv[1] + "/mine.keras")
        for call in (lambda: load(sys.argv[1] + "/saved_model"),
                     lambda: export_model(model, sys.argv[1] + "/x", formats="onnx")):
            try:
                call()
            except ImportError as err:
                assert not isinstance(err, ModuleNotFoundError), err
                print(err)
        """
    )

    def run(*args, code=NO_TENSORFLOW):
        return subprocess.run(
            [sys.executable, "-c", code, *args],
            capture_output=True,
            text=True,
            env=env,
            cwd=REPO,
            timeout=600,
        )

    result = run(str(tmp_path / "mine.keras"), "--out-root", str(tmp_path / "out"), "--name", "m")
    assert result.returncode == 0, result.stderr[-3000:]
    err = result.stderr
    assert "TensorFlow is not installed: running on jax" in err
    for fmt in ("saved_model", "onnx", "tflite"):
        assert f"skipping {fmt}: " in err and "pip install tensorflow" in err
    assert "[keras; largest difference to Keras" in result.stdout
    assert sorted(p.name for p in (tmp_path / "out" / "m").iterdir()) == [
        "model.json",
        "model.keras",
    ]
    result = run(str(tmp_path / "mine.keras"), "--formats", "tflite", "--name", "n")
    assert result.returncode == 2
    assert "error: the TFLite export needs tensorflow: pip install tensorflow" in result.stderr
    result = run(str(tmp_path), code=check)
    assert result.returncode == 0, result.stderr[-3000:]
    lines = result.stdout.splitlines()
    assert lines[0] == "Loading a TensorFlow SavedModel needs tensorflow: pip install tensorflow"
    assert (
        lines[1].startswith("the ONNX export needs tensorflow")
        and "pip install tensorflow" in lines[1]
    )
