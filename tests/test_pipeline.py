"""The pieces together, as a user chains them: a tuned config file through the protocol
(`--models best_config.json,cnn`), the best run's weights, export, and loading the export."""

import json
import subprocess
import sys

import numpy as np
import pytest
from data_helpers import REPO, write_npz

import keras_attn
from keras_attn import export, protocol


@pytest.fixture
def tuned_config(tmp_path):
    config = keras_attn.get_config(
        "cnn_conv_ae_eca", name="tuned_test_config", sites=[3, 4], conv_ae={"filters": [4, 8]}
    )
    path = tmp_path / "best_config.json"
    path.write_text(json.dumps(config))
    yield path, config
    keras_attn.zoo.VARIANTS.pop("tuned_test_config", None)


def test_config_file_runs_in_the_protocol_and_its_best_run_exports(tmp_path, tuned_config):
    """On a slim backbone (``--override``, which applies to a config file's model too)."""
    path, config = tuned_config
    npz = write_npz(tmp_path / "data.npz", n_train=48, n_test=16)
    slim = {"blocks": [8, 16], "dense_units": 16}
    settings = protocol.ProtocolSettings(
        runs=2, epochs=1, batch_size=16, data=npz, val_size=16, threads=2, model_overrides=slim
    )
    out = tmp_path / "results"
    records = protocol.run_protocol(f"{path},cnn", settings, str(out), log=None)
    assert [(r["model"], r["run"]) for r in records] == [
        ("tuned_test_config", 0),
        ("cnn", 0),
        ("tuned_test_config", 1),
        ("cnn", 1),
    ]
    tuned = [r for r in records if r["model"] == "tuned_test_config"]
    assert tuned[0]["model_config"]["conv_ae"]["filters"] == [4, 8]
    assert tuned[0]["model_config"]["blocks"] == [8, 16]
    assert tuned[0]["trainable_params"] == keras_attn.count_trainable_params(
        keras_attn.build(config, **slim)
    )

    record, weights = protocol.best_run(str(out), "tuned_test_config")
    expected = max(tuned, key=lambda r: (r["best_val_accuracy"], -r["run"]))
    assert record["run"] == expected["run"]
    assert weights.endswith(f"run-{expected['run']:04d}.weights.h5")

    # The exported model predicts what the run's best weights predict.
    card = export.export_best(str(out), "tuned_test_config", out_root=tmp_path / "exports")
    assert card["record_summary"]["run"] == expected["run"]
    model = keras_attn.build(record["model_config"])
    model.load_weights(weights)
    x = np.random.default_rng(0).integers(0, 256, (4, 32, 32, 3)).astype("uint8")
    loaded = keras_attn.load(tmp_path / "exports" / "tuned_test_config")
    np.testing.assert_allclose(
        loaded.predict(x.astype("float32"), verbose=0),
        model.predict(x.astype("float32"), verbose=0),
        atol=1e-6,
    )


def test_best_run_errors(tmp_path):
    with pytest.raises(ValueError, match="No protocol records"):
        protocol.best_run(str(tmp_path), "cnn")


def test_a_config_file_that_clashes_with_a_registered_name_is_refused(tmp_path):
    path = tmp_path / "c.json"
    path.write_text(json.dumps(keras_attn.get_config("cnn_eca", name="cnn")))
    with pytest.raises(ValueError, match="named 'cnn', which is a registered variant with a diff"):
        protocol.plan_tasks(str(path), 1)


@pytest.mark.slow
def test_protocol_script_with_export_flag(tmp_path):
    npz = write_npz(tmp_path / "data.npz", n_train=32, n_test=8)
    out, exports = tmp_path / "results", tmp_path / "exports"
    cmd = [
        sys.executable, str(REPO / "scripts" / "protocol.py"),
        "--models", "cnn", "--runs", "1", "--epochs", "1", "--batch-size", "16",
        "--data-dir", npz, "--val-size", "8", "--out", str(out), "--export", str(exports),
        "--quiet", "--no-report", "--override", "blocks=[8,16]", "--override", "dense_units=16",
    ]  # fmt: skip
    result = subprocess.run(cmd, capture_output=True, text=True, timeout=600)
    assert result.returncode == 0, result.stdout[-2000:] + result.stderr[-3000:]
    assert "exported cnn (run 0" in result.stdout
    card = json.loads((exports / "cnn" / "model.json").read_text())
    slim = keras_attn.build("cnn", blocks=[8, 16], dense_units=16)  # what --override built
    assert card["record"]["model"] == "cnn" and card["config"] == slim.model_config
    assert card["trainable_params"] == keras_attn.count_trainable_params(slim)
