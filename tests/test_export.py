"""Export and loading around the formats: clear errors, missing packages (TensorFlow hidden),
overwriting, the protocol's best run, keras-attn export, a model trained on JAX. Every format
of every variant: see test_export_formats.py; saved_models/README.md: test_export_readme.py.
"""

import importlib.util
import json
import os
import subprocess
import sys
import textwrap
import zipfile

import keras
import numpy as np
import pytest
from export_helpers import load_script, reference_predictions, small_model, uint8_images
from PIL import Image

import keras_attn
from keras_attn import export
from keras_attn.export.formats import FORMATS
from keras_attn.predict import predict

TOL = 1e-5
needs_tf = pytest.mark.skipif(
    keras.backend.backend() != "tensorflow", reason="SavedModel export needs the TF backend"
)


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
        keras_attn.load(tmp_path, format="pickle")


def test_format_that_is_not_there_is_refused(tmp_path):
    model = small_model("cnn_eca")
    export.export_model(model, tmp_path / "m", formats=("keras",), verify=False)
    with pytest.raises(ValueError, match="has no 'saved_model' artifact.*only model.keras"):
        keras_attn.load(tmp_path / "m", format="saved_model")
    with pytest.raises(ValueError, match="has no 'onnx' artifact.*only model.keras"):
        keras_attn.load(tmp_path / "m", format="onnx")
    with pytest.raises(ValueError, match="is a .keras file, not a SavedModel"):
        keras_attn.load(tmp_path / "m" / "model.keras", format="saved_model")
    with pytest.raises(ValueError, match="is a .keras file, not a TFLite model"):
        keras_attn.load(tmp_path / "m" / "model.keras", format="tflite")


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
        export.export_model(model, tmp_path, formats=("pickle",))
    with pytest.raises(ValueError, match="Did you mean 'tflite'"):
        export.export_model(model, tmp_path, formats=("tflight",))
    assert not list(tmp_path.iterdir())
    monkeypatch.setattr(keras.backend, "backend", lambda: "jax")
    with pytest.raises(
        RuntimeError, match="needs the TensorFlow backend.*KERAS_BACKEND=tensorflow"
    ):
        export.export_model(model, tmp_path, formats=("keras", "saved_model"))


def _hide(monkeypatch, *modules):
    """Make ``modules`` look uninstalled to the format checks."""
    find_spec = importlib.util.find_spec
    monkeypatch.setattr(
        importlib.util, "find_spec", lambda name, *a: None if name in modules else find_spec(name)
    )


def test_a_missing_package_is_named_with_what_to_install(tmp_path, monkeypatch):
    _hide(monkeypatch, "tf2onnx", "onnxruntime")
    assert "onnx" not in export.available_formats()
    assert export.install_hint("onnx") == (
        "the ONNX export needs tf2onnx, onnxruntime: pip install tf2onnx onnxruntime"
    )
    assert export.install_hint("keras") is None
    with pytest.raises(ImportError, match="ONNX export needs tf2onnx, onnxruntime: pip install"):
        export.export_model(small_model("cnn"), tmp_path, formats=["keras", "onnx"])
    assert not list(tmp_path.iterdir())


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

    monkeypatch.setattr(protocol, "best_run", best_run)
    card = export.export_best(
        tmp_path / "results",
        "cnn_eca",
        out_root=tmp_path / "saved",
        formats=("keras", "saved_model"),
    )
    assert calls == [(str(tmp_path / "results"), "cnn_eca")]
    assert card["record"] == record and card["class_names"] == names
    assert card["class_names_source"] == "record"
    assert card["record_summary"]["test_accuracy"] == 0.6
    assert card["record_summary"]["best_val_accuracy"] == 0.61
    images = uint8_images((32, 32, 3))
    served = keras_attn.load(tmp_path / "saved" / "cnn_eca", format="saved_model")
    np.testing.assert_allclose(
        predict(served, images), reference_predictions(model, images), atol=TOL
    )


def test_export_best_of_an_empty_folder_prints_the_path(tmp_path):
    with pytest.raises(ValueError) as info:
        export.export_best(tmp_path, "cnn", formats="keras")
    assert str(tmp_path) in str(info.value) and "PosixPath" not in str(info.value)


# --------------------------------------------------------------------------- scripts


def _protocol_folder(root, models):
    """A protocol results folder with one finished run of each model, as best_run reads it."""
    for i, name in enumerate(models):
        model = small_model(name)
        rel = f"weights/s1/{name}/run-0000.weights.h5"
        (root / rel).parent.mkdir(parents=True)
        model.save_weights(root / rel)
        record = {**_fake_record(model, None), "model": name, "run": 0, "weights": rel}
        record.update(settings_id="s1", data={}, best_val_accuracy=0.5 + i / 10)
        (root / "records" / "s1" / name).mkdir(parents=True)
        (root / "records" / "s1" / name / "run-0000.json").write_text(json.dumps(record))


@needs_tf
def test_export_script_exports_a_keras_file(tmp_path, monkeypatch, capsys):
    script = load_script("export", monkeypatch)
    small_model("cnn_eca").save(tmp_path / "mine.keras")
    names = ",".join(f"k{i}" for i in range(10))
    argv = [str(tmp_path / "mine.keras"), "--out-root", str(tmp_path / "out"), "--name", "mine"]
    fast = ["--formats", "keras", "--no-verify"]
    assert script.main([*argv, "--class-names", names, *fast]) == 0
    assert "exported cnn_eca" in capsys.readouterr().out
    assert export.load_card(tmp_path / "out" / "mine")["class_names"][0] == "k0"
    assert script.main([*argv, "--formats", "keras"]) == 2
    assert "already holds an export" in capsys.readouterr().err
    assert script.main([*argv, "--formats", "keras,onnks"]) == 2
    assert "Did you mean 'onnx'" in capsys.readouterr().err


def test_export_script_names_the_models_of_a_results_folder(tmp_path, monkeypatch, capsys):
    script = load_script("export", monkeypatch)
    empty = tmp_path / "empty"
    empty.mkdir()
    for argv in ([str(empty)], [str(empty), "--model", "cnn"]):
        assert script.main([*argv, "--formats", "keras"]) == 2
        err = capsys.readouterr().err
        assert err.startswith(f"error: No protocol records in {empty}: expected {empty}/records/")
        assert "PosixPath" not in err and "Traceback" not in err
    results = tmp_path / "results"
    _protocol_folder(results, ["cnn", "cnn_eca"])
    assert script.main([str(results), "--formats", "keras"]) == 2
    err = capsys.readouterr().err
    assert "Models with weights there: cnn, cnn_eca (e.g. --model cnn)." in err
    assert script.main([str(results), "--model", "cnn,no_such_model", "--formats", "keras"]) == 2
    err = capsys.readouterr().err
    assert err == (
        f"error: No records of no_such_model in {results}. Models with weights there: cnn, "
        "cnn_eca.\n"
    )
    out_root = tmp_path / "saved"
    assert script.main([str(results), "--model", "cnn_eca", "--out-root", str(out_root)]) == 0
    out = capsys.readouterr().out
    assert "exported cnn_eca" in out and "run 0" in out
    card = export.load_card(out_root / "cnn_eca")
    assert card["record_summary"]["best_val_accuracy"] == 0.6
    assert set(card["verified_max_abs_diff"]) == set(export.available_formats())


def test_export_script_suggests_only_models_whose_weights_are_there(tmp_path, monkeypatch, capsys):
    script = load_script("export", monkeypatch)
    results = tmp_path / "results"
    _protocol_folder(results, ["cnn", "cnn_eca", "cnn3"])
    (results / "weights/s1/cnn/run-0000.weights.h5").unlink()  # records copied without weights
    (results / "weights/s1/cnn3/run-0000.weights.h5").unlink()
    assert script.main([str(results), "--formats", "keras"]) == 2
    err = capsys.readouterr().err
    assert (
        "Models with weights there: cnn_eca (cnn, cnn3: records without weights) "
        "(e.g. --model cnn_eca)." in err
    )
    assert script.main([str(results), "--model", "cnn", "--formats", "keras"]) == 2
    err = capsys.readouterr().err
    assert err.startswith(f"error: The best run of cnn in {results} (run 0, validation accuracy")
    assert f"{results}/weights/s1/cnn/run-0000.weights.h5 is missing" in err
    (results / "weights/s1/cnn_eca/run-0000.weights.h5").unlink()
    assert script.main([str(results), "--formats", "keras"]) == 2
    err = capsys.readouterr().err
    assert "has records of cnn, cnn3, cnn_eca but none of their weights" in err
    assert "--model" not in err.replace("--no-weights", "")


# --------------------------------------------------------------------------- without TensorFlow


def test_without_tensorflow_each_path_that_needs_it_says_so_in_one_line(
    tmp_path, monkeypatch, capsys
):
    """TensorFlow (and LiteRT) gone from sys.modules: what needs them names the package."""
    (tmp_path / "sm").mkdir()
    (tmp_path / "sm" / "saved_model.pb").write_bytes(b"")
    (tmp_path / "m.tflite").write_bytes(b"")
    _protocol_folder(tmp_path / "results", ["cnn"])
    export_script = load_script("export", monkeypatch)
    predict_script = load_script("predict", monkeypatch)
    image = tmp_path / "cat.png"
    Image.fromarray(uint8_images((32, 32, 3), n=1)[0]).save(image)
    model = small_model("cnn")
    load_message = "Loading a TensorFlow SavedModel needs tensorflow: pip install tensorflow"
    with monkeypatch.context() as hidden:
        for module in ("tensorflow", "ai_edge_litert", "ai_edge_litert.interpreter"):
            hidden.setitem(sys.modules, module, None)  # `import tensorflow` fails, as uninstalled
        assert export.available_formats() == ("keras",)
        for fmt, title in (("saved_model", "SavedModel"), ("onnx", "ONNX"), ("tflite", "TFLite")):
            hint = export.install_hint(fmt)
            assert hint.startswith(f"the {title} export needs tensorflow") and "\n" not in hint
            with pytest.raises(ImportError) as info:
                export.export_model(model, tmp_path / fmt, formats=["keras", fmt])
            assert str(info.value) == hint and not isinstance(info.value, ModuleNotFoundError)
            assert not (tmp_path / fmt).exists()
            argv = [str(tmp_path / "results"), "--model", "cnn", "--formats", f"keras,{fmt}"]
            assert export_script.main(argv) == 2  # first the note a machine without it gets
            note, *errors = capsys.readouterr().err.splitlines()
            assert note.startswith("note: TensorFlow is not installed: running on ")
            assert errors == [f"error: {hint}"]
        with pytest.raises(ImportError) as info:
            keras_attn.load(tmp_path / "sm")
        assert str(info.value) == load_message
        with pytest.raises(ImportError, match=r"^Loading a TFLite model needs the LiteRT interp"):
            keras_attn.load(tmp_path / "m.tflite")
        assert predict_script.main([str(tmp_path / "sm"), str(image)]) == 2
        assert capsys.readouterr().err.splitlines() == [f"error: {load_message}"]

    # Writing .keras runs the model, which Keras on TensorFlow cannot do without it: from here
    # TensorFlow only looks uninstalled (find_spec), as it does to a JAX-only machine.
    _hide(monkeypatch, "tensorflow")
    card = export.export_model(model, tmp_path / "k")
    assert card["files"] == {"keras": "model.keras"} and card["verified_max_abs_diff"]["keras"] == 0
    card = export.export_best(tmp_path / "results", "cnn", out_root=tmp_path / "best")
    assert card["files"] == {"keras": "model.keras"} and card["record_summary"]["run"] == 0
    model.save(tmp_path / "mine.keras")
    export_script = load_script("export", monkeypatch)  # its backend note: TensorFlow missing
    argv = [str(tmp_path / "mine.keras"), "--out-root", str(tmp_path / "out"), "--name", "a"]
    assert export_script.main(argv) == 0
    err = capsys.readouterr().err.splitlines()
    assert err[0].startswith("note: TensorFlow is not installed: running on ")
    assert err[1:] == [f"skipping {f}: {export.install_hint(f)}" for f in FORMATS[1:]]
    assert sorted(p.name for p in (tmp_path / "out" / "a").iterdir()) == [
        "model.json",
        "model.keras",
    ]


@needs_tf
@pytest.mark.skipif(importlib.util.find_spec("jax") is None, reason="jax is not installed")
def test_model_saved_on_jax_loads_on_tensorflow_and_exports(tmp_path):
    script = textwrap.dedent(
        """
        import sys
        import keras, numpy as np
        import keras_attn
        assert keras.backend.backend() == "jax"
        keras.utils.set_random_seed(0)
        model = keras_attn.build("cnn_cbam_spatial_eca", blocks=[4, 8], dense_units=8)
        rng = np.random.default_rng(0)
        # As if trained: every weight moved, BatchNorm statistics included (variances > 0).
        model.set_weights([w * rng.uniform(0.5, 1.5, w.shape) + rng.normal(0, 0.01, w.shape)
                           for w in model.get_weights()])
        x = rng.integers(0, 256, size=(4, 32, 32, 3)).astype("float32")
        out = sys.argv[1]
        model.save(f"{out}/jax_model.keras")
        np.save(f"{out}/x.npy", x.astype("uint8"))
        np.save(f"{out}/y.npy", model.predict(x, verbose=0))
        """
    )
    env = {**os.environ, "KERAS_BACKEND": "jax", "JAX_PLATFORMS": "cpu"}
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
