"""Export and loading: every variant to SavedModel + .keras + card, reloaded both ways
(the SavedModel also in a fresh process that never imports keras_attn), a JAX-trained
.keras file exported from TensorFlow, the image helpers, the scripts, and clear errors.

Models are small (8/16 filters, 16 dense units) and untrained: equality of predictions
in inference mode is what is tested, not accuracy.
"""

import importlib.util
import json
import os
import pathlib
import subprocess
import sys
import textwrap
import zipfile

import keras
import numpy as np
import pytest
from PIL import Image

import keras_attn
from keras_attn import export
from keras_attn.backbone import count_trainable_params

REPO = pathlib.Path(__file__).resolve().parents[1]
VARIANTS = [
    "cnn",
    "cnn_eca",
    "cnn_cbam",
    "cnn3",
    "cnn_conv_ae",
    "cnn_conv_ae_eca",
    "cnn_linear_ae",
    "cnn_linear_ae_eca",
    "cnn_cbam_spatial_eca",
]
# One variant exercises another input spec: grayscale, another size, five classes.
SPECS = {"cnn_linear_ae": {"input_shape": (28, 28, 1), "num_classes": 5}}
TOL = 1e-5

needs_tf = pytest.mark.skipif(
    keras.backend.backend() != "tensorflow", reason="SavedModel export needs the TF backend"
)


def small_model(name, **overrides):
    """A registry variant with few filters, same structure (sites, blocks, attention)."""
    blocks = [8, 16, 16] if name == "cnn3" else [8, 16]
    kwargs = {"blocks": blocks, "dense_units": 16, **SPECS.get(name, {}), **overrides}
    return keras_attn.build(name, **kwargs)


def uint8_images(shape, n=3, seed=0):
    return np.random.default_rng(seed).integers(0, 256, size=(n, *shape), dtype=np.uint8)


def reference_predictions(model, images):
    return keras.ops.convert_to_numpy(model(images.astype("float32"), training=False))


@pytest.fixture(scope="module")
def exported(tmp_path_factory):
    """All nine variants exported once: name -> (folder, model, images, expected)."""
    if keras.backend.backend() != "tensorflow":
        pytest.skip("SavedModel export needs the TF backend")
    root = tmp_path_factory.mktemp("exports")
    out = {}
    for i, name in enumerate(VARIANTS):
        keras.utils.set_random_seed(i)
        model = small_model(name)
        num_classes = model.output_shape[-1]
        names = [f"class_{c}" for c in range(num_classes)]
        # The reload check inside export runs once here; the tests below do it for all.
        verify = name == "cnn_conv_ae_eca"
        export.export_model(model, root / name, class_names=names, verify=verify)
        images = uint8_images(model.input_shape[1:], seed=i)
        out[name] = (root / name, model, images, reference_predictions(model, images))
    return out


@needs_tf
@pytest.mark.parametrize("name", VARIANTS)
def test_export_writes_three_artifacts_and_a_card(exported, name):
    folder, model, _, _ = exported[name]
    assert (folder / "model.keras").is_file()
    assert (folder / "saved_model" / "saved_model.pb").is_file()
    assert not [p for p in folder.iterdir() if p.name.startswith(".export-")]
    card = json.loads((folder / "model.json").read_text())
    assert card == export.load_card(folder) == export.load_card(folder / "saved_model")
    assert card["name"] == name
    assert card["config"] == model.model_config
    assert card["trainable_params"] == count_trainable_params(model)
    num_classes = model.output_shape[-1]
    assert card["class_names"] == [f"class_{c}" for c in range(num_classes)]
    assert card["input"]["shape"] == [None, *model.input_shape[1:]]
    assert card["input"]["dtype"] == "uint8"
    assert card["output"]["shape"] == [None, num_classes]
    assert card["signatures"] == ["serve", "serving_default"]
    assert card["record"] is None
    assert {"keras_attn", "keras", "numpy", "python"} <= set(card["versions"])
    if name == "cnn_conv_ae_eca":
        assert set(card["verified_max_abs_diff"]) == {"keras", "saved_model"}
        assert all(v <= TOL for v in card["verified_max_abs_diff"].values())


@needs_tf
@pytest.mark.parametrize("name", VARIANTS)
def test_both_formats_reload_with_equal_predictions(exported, name):
    folder, _, images, expected = exported[name]
    for path in (folder, folder / "model.keras"):
        model = keras_attn.load(path)
        assert isinstance(model, keras_attn.AttentionCNN)
        np.testing.assert_allclose(export.predict(model, images), expected, atol=TOL, rtol=0)
    for path, fmt in ((folder, "saved_model"), (folder / "saved_model", "auto")):
        served = keras_attn.load(path, format=fmt)
        np.testing.assert_allclose(export.predict(served, images), expected, atol=TOL, rtol=0)
    with pytest.raises(ValueError, match=r"SavedModel takes images \(\d+, \d+, \d\), got \(9, 9"):
        export.predict(served, uint8_images((9, 9, images.shape[-1])))


@needs_tf
def test_saved_models_load_in_a_process_without_keras_attn(exported, tmp_path):
    """What a serving user does: plain tf.saved_model.load, both signatures, uint8 in."""
    cases = {}
    for name, (folder, _, images, expected) in exported.items():
        np.save(tmp_path / f"{name}_x.npy", images)
        np.save(tmp_path / f"{name}_y.npy", expected)
        cases[name] = str(folder / "saved_model")
    script = textwrap.dedent(
        """
        import json, sys
        import numpy as np
        import tensorflow as tf
        cases, data = json.loads(sys.argv[1]), sys.argv[2]
        diffs = {}
        for name, path in cases.items():
            x = np.load(f"{data}/{name}_x.npy")
            y = np.load(f"{data}/{name}_y.npy")
            m = tf.saved_model.load(path)  # keep a reference while calling it
            a = m.serve(tf.constant(x)).numpy()
            b = m.signatures["serving_default"](images=tf.constant(x))["output_0"].numpy()
            spec = m.signatures["serving_default"].structured_input_signature[1]["images"]
            assert spec.dtype == tf.uint8 and spec.shape[0] is None, spec
            diffs[name] = [float(np.abs(a - y).max()), float(np.abs(b - y).max())]
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
    assert all(d <= TOL for pair in diffs.values() for d in pair), diffs


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
    np.testing.assert_allclose(export.predict(model, x), y, atol=TOL, rtol=0)
    card = export.export_model(model, tmp_path / "export")
    assert card["versions"]["keras_backend"] == "tensorflow"
    served = keras_attn.load(tmp_path / "export", format="saved_model")
    np.testing.assert_allclose(export.predict(served, x), y, atol=TOL, rtol=0)


# --------------------------------------------------------------------------- errors


def test_a_path_that_is_not_an_export_gets_a_clear_error(tmp_path):
    with pytest.raises(
        FileNotFoundError, match="No such file or folder.*Expected an export folder"
    ):
        keras_attn.load(tmp_path / "missing")
    (tmp_path / "notes.txt").write_text("hello")
    with pytest.raises(ValueError, match=r"is not a model export.*holds: notes.txt"):
        keras_attn.load(tmp_path)
    with pytest.raises(ValueError, match=r"notes.txt is not a model export.*\.keras file"):
        keras_attn.load(tmp_path / "notes.txt")
    (tmp_path / "broken.keras").write_bytes(b"not a zip")
    with pytest.raises(ValueError, match="broken.keras is not a valid .keras file"):
        keras_attn.load(tmp_path / "broken.keras")
    with pytest.raises(ValueError, match="`format` must be one of"):
        keras_attn.load(tmp_path, format="onnx")


def test_format_that_is_not_there_is_refused(tmp_path):
    model = small_model("cnn_eca")
    export.export_model(model, tmp_path / "m", formats=("keras",), verify=False)
    with pytest.raises(ValueError, match="has no 'saved_model' artifact.*only model.keras"):
        keras_attn.load(tmp_path / "m", format="saved_model")
    with pytest.raises(ValueError, match="is a .keras file, not a SavedModel"):
        keras_attn.load(tmp_path / "m" / "model.keras", format="saved_model")


def _rewrite_keras(src, dst, edit):
    with zipfile.ZipFile(src) as z:
        files = {n: z.read(n) for n in z.namelist()}
    files["config.json"] = json.dumps(edit(json.loads(files["config.json"]))).encode()
    with zipfile.ZipFile(dst, "w") as z:
        for n, b in files.items():
            z.writestr(n, b)


def test_keras_file_from_an_unknown_package_names_the_missing_class(tmp_path):
    small_model("cnn_eca").save(tmp_path / "ok.keras")

    def edit(config):
        config.update(module="other_pkg.models", class_name="Foo", registered_name="other_pkg>Foo")
        return config

    _rewrite_keras(tmp_path / "ok.keras", tmp_path / "other.keras", edit)
    with pytest.raises(ValueError, match=r"'other_pkg>Foo'.*other_pkg.models.*import other_pkg"):
        keras_attn.load(tmp_path / "other.keras")


def test_export_refuses_to_overwrite_unless_asked(tmp_path):
    model = small_model("cnn")
    export.export_model(model, tmp_path, formats="keras", verify=False)
    with pytest.raises(FileExistsError, match="already holds an export.*overwrite=True"):
        export.export_model(model, tmp_path, formats="keras", verify=False)
    (tmp_path / "keep.txt").write_text("mine")
    export.export_model(model, tmp_path, formats="keras", verify=False, overwrite=True)
    assert (tmp_path / "keep.txt").exists()


def test_export_argument_errors(tmp_path, monkeypatch):
    model = small_model("cnn")
    with pytest.raises(ValueError, match="3 class names.*10 outputs"):
        export.export_model(model, tmp_path, class_names=["a", "b", "c"], formats="keras")
    with pytest.raises(ValueError, match="`formats` must be a non-empty subset"):
        export.export_model(model, tmp_path, formats=("onnx",))
    monkeypatch.setattr(keras.backend, "backend", lambda: "jax")
    with pytest.raises(
        RuntimeError, match="needs the TensorFlow backend.*KERAS_BACKEND=tensorflow"
    ):
        export.export_model(model, tmp_path)


# --------------------------------------------------------------------------- images


def _save(array, path, mode=None):
    Image.fromarray(array, mode=mode).save(path)
    return path


def test_image_that_cannot_be_decoded_is_named(tmp_path):
    bad = tmp_path / "cat.png"
    bad.write_text("this is not a PNG")
    with pytest.raises(ValueError, match="Cannot decode .*cat.png"):
        export.read_image(bad)
    with pytest.raises(FileNotFoundError, match="ship.jpg"):
        export.read_image(tmp_path / "ship.jpg")


def test_images_of_another_size_are_cropped_stretched_or_refused(tmp_path):
    # 32 high, 64 wide: left quarter red, middle half green, right quarter blue.
    wide = np.zeros((32, 64, 3), np.uint8)
    wide[:, :16, 0] = 255
    wide[:, 16:48, 1] = 255
    wide[:, 48:, 2] = 255
    path = _save(wide, tmp_path / "wide.png")

    cropped, notes = export.load_images([path], (32, 32, 3))
    assert cropped.shape == (1, 32, 32, 3) and cropped.dtype == np.uint8
    assert "center-cropped and resized to 32x32" in notes[0]
    assert cropped[0, :, 4:28, 1].min() == 255 and cropped[0, :, 4:28, [0, 2]].max() == 0

    stretched, notes = export.load_images([path], (16, 16, 3), resize="stretch")
    assert stretched.shape == (1, 16, 16, 3) and "stretched" in notes[0]
    assert stretched[0, :, 0, 0].min() > 200 and stretched[0, :, -1, 2].min() > 200

    with pytest.raises(ValueError, match=r"wide.png: Image is 32x64.*model takes 32x32.*--resize"):
        export.load_images([path], (32, 32, 3), resize="none")
    same, notes = export.load_images([path], (32, 64, 3), resize="none")
    assert notes == [None] and np.array_equal(same[0], wide)
    with pytest.raises(ValueError, match="`resize` must be one of"):
        export.fit_image(wide, (32, 32), resize="pad")


def test_grayscale_and_rgba_are_converted_to_the_model_channels(tmp_path):
    gray = _save(np.full((8, 8), 100, np.uint8), tmp_path / "gray.png")
    rgb = export.read_image(gray, channels=3)
    assert rgb.shape == (8, 8, 3) and (rgb == 100).all()
    rgba = np.zeros((8, 8, 4), np.uint8)
    rgba[..., 0] = 255
    rgba[:4, :, 3] = 255  # top half opaque red, bottom half fully transparent
    path = _save(rgba, tmp_path / "rgba.png")
    rgb = export.read_image(path, channels=3)
    assert (rgb[:4] == [255, 0, 0]).all() and (rgb[4:] == 255).all()  # transparent -> white
    assert export.read_image(path, channels=1).shape == (8, 8, 1)
    with pytest.raises(ValueError, match="`channels` must be 1 .* or 3 .*got 4"):
        export.read_image(path, channels=4)


def test_predict_and_top_k():
    model = small_model("cnn_eca")
    images = uint8_images((32, 32, 3))
    probs = export.predict(model, images)
    np.testing.assert_allclose(probs, reference_predictions(model, images), atol=TOL)
    assert probs.shape == (3, 10) and np.allclose(probs.sum(axis=1), 1, atol=1e-5)
    with pytest.raises(ValueError, match="must be uint8"):
        export.predict(model, images.astype("float32"))
    with pytest.raises(ValueError, match=r"takes images \(32, 32, 3\), got \(16, 16, 3\)"):
        export.predict(model, uint8_images((16, 16, 3)))
    ranked = export.top_k([[0.1, 0.6, 0.3]], ["cat", "dog", "ship"], k=5)
    assert ranked == [[("dog", 0.6), ("ship", 0.3), ("cat", 0.1)]]
    with pytest.raises(ValueError, match="`k` must be a positive integer, got 0"):
        export.top_k([[1.0]], k=0)


# --------------------------------------------------------------------------- protocol


def _fake_record(model, class_names):
    return {
        "model": "cnn_eca",
        "run": 3,
        "seed": 3,
        "best_epoch": 7,
        "best_val_accuracy": 0.61,
        "val_accuracy": [0.5, 0.61],
        "test_accuracy": 0.6,
        "settings": {"epochs": 10, "learning_rate": 0.1},
        "model_config": model.model_config,
        "data": {"class_names": class_names, "counts": {"train": 45000}, "fingerprint": "ab"},
    }


@needs_tf
def test_export_best_exports_the_protocol_run_with_its_record(tmp_path, monkeypatch):
    from keras_attn import protocol

    model = small_model("cnn_eca")
    weights = tmp_path / "results" / "run-0003.weights.h5"
    weights.parent.mkdir()
    model.save_weights(weights)
    names = [f"c{i}" for i in range(10)]
    record = _fake_record(model, names)
    calls = []

    def best_run(out_dir, model_name):
        calls.append((out_dir, model_name))
        return record, weights

    monkeypatch.setattr(protocol, "best_run", best_run, raising=False)
    card = export.export_best(tmp_path / "results", "cnn_eca", out_root=tmp_path / "saved")
    assert calls == [(tmp_path / "results", "cnn_eca")]
    assert card["record"] == record and card["class_names"] == names
    assert card["class_names_source"] == "record"
    assert card["record_summary"]["test_accuracy"] == 0.6
    assert card["record_summary"]["best_val_accuracy"] == 0.61
    images = uint8_images((32, 32, 3))
    served = keras_attn.load(tmp_path / "saved" / "cnn_eca", format="saved_model")
    np.testing.assert_allclose(
        export.predict(served, images), reference_predictions(model, images), atol=TOL
    )

    monkeypatch.delattr(protocol, "best_run")
    with pytest.raises(NotImplementedError, match="best_run"):
        export.export_best(tmp_path / "results", "cnn_eca", out_root=tmp_path / "again")


# --------------------------------------------------------------------------- scripts


def load_script(name, monkeypatch):
    """Import scripts/<name>.py as a module (its main(argv) is what the tests call)."""
    monkeypatch.setenv("KERAS_BACKEND", keras.backend.backend())  # restored after the test
    spec = importlib.util.spec_from_file_location(f"script_{name}", REPO / "scripts" / f"{name}.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


@needs_tf
def test_predict_script_prints_top_k_with_class_names(exported, tmp_path, monkeypatch, capsys):
    predict = load_script("predict", monkeypatch)
    folder = exported["cnn_conv_ae"][0]
    cat = _save(uint8_images((40, 48, 3), n=1)[0], tmp_path / "cat.png")
    ship = _save(uint8_images((32, 32, 3), n=1)[0], tmp_path / "ship.jpg")
    broken = tmp_path / "broken.png"
    broken.write_bytes(b"\x89PNG garbage")
    assert predict.main([str(folder), str(cat), str(ship), "--top-k", "3"]) == 0
    out = capsys.readouterr().out
    assert "cat.png  (center-cropped and resized to 32x32)" in out
    assert out.count("  1. class_") == 2 and "  4. " not in out

    assert (
        predict.main([str(folder), str(ship), str(broken), "--json", "--format=saved_model"]) == 1
    )
    captured = capsys.readouterr()
    assert "Cannot decode" in captured.err and "broken.png" in captured.err
    line = json.loads(captured.out.strip().splitlines()[0])
    assert line["image"] == str(ship) and len(line["top_k"]) == 5

    assert predict.main([str(folder), str(cat), "--resize", "none"]) == 1
    assert "model takes 32x32" in capsys.readouterr().err
    assert predict.main([str(tmp_path), str(cat)]) == 2
    assert "is not a model export" in capsys.readouterr().err


@needs_tf
def test_export_script_exports_a_keras_file(tmp_path, monkeypatch, capsys):
    script = load_script("export", monkeypatch)
    small_model("cnn_eca").save(tmp_path / "mine.keras")
    names = ",".join(f"k{i}" for i in range(10))
    argv = [str(tmp_path / "mine.keras"), "--out-root", str(tmp_path / "out"), "--name", "mine"]
    assert script.main([*argv, "--class-names", names, "--no-verify"]) == 0
    assert "exported cnn_eca" in capsys.readouterr().out
    assert export.load_card(tmp_path / "out" / "mine")["class_names"][0] == "k0"
    assert script.main(argv) == 2
    assert "already holds an export" in capsys.readouterr().err
    assert script.main([str(tmp_path), "--out-root", str(tmp_path / "out")]) == 2
    assert "--model NAME" in capsys.readouterr().err
