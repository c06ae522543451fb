"""Export and loading around the formats: clear errors, missing packages, overwriting, the
protocol's best run, and scripts/export.py. Every format of every variant: see
test_export_formats.py.
"""

import importlib.util
import json
import zipfile

import keras
import numpy as np
import pytest
from export_helpers import load_script, reference_predictions, small_model, uint8_images

import keras_attn
from keras_attn import export
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
        assert f"'{empty}'" in err and "PosixPath" not in err
    results = tmp_path / "results"
    _protocol_folder(results, ["cnn", "cnn_eca"])
    assert script.main([str(results), "--formats", "keras"]) == 2
    err = capsys.readouterr().err
    assert "models with records there: cnn, cnn_eca (e.g. --model cnn)" in err
    out_root = tmp_path / "saved"
    assert script.main([str(results), "--model", "cnn_eca", "--out-root", str(out_root)]) == 0
    out = capsys.readouterr().out
    assert "exported cnn_eca" in out and "run 0" in out
    assert export.load_card(out_root / "cnn_eca")["record_summary"]["best_val_accuracy"] == 0.6
