"""The protocol's training loop (keras_attn.protocol.loop): packed runs (``copies``), jit and
mixed-precision settings.

Packed runs must give each run the record it gets alone (within float
tolerance), resume as a group after an interruption, and let one run diverge
without stopping the others. Tiny synthetic data and a slim backbone keep each
protocol to seconds.
"""

import json

import keras
import numpy as np
import pytest
from data_helpers import TIMING_KEYS, write_npz

from keras_attn import parallel, protocol

SLIM = {"blocks": [4, 8], "dense_units": 16}


def _settings(npz, **kw):
    base = dict(
        runs=3,
        epochs=2,
        batch_size=16,
        data=str(npz),
        val_size=16,
        threads=2,
        model_overrides=SLIM,
    )
    base.update(kw)
    return protocol.ProtocolSettings(**base)


def _assert_same_runs(a, b):
    """Two records of one run agree: same seed, settings id, epochs, accuracies, losses."""
    skip = TIMING_KEYS | {"resumed_at_epochs", "environment", "settings", "training"}
    for key in sorted(set(a) - skip):
        va, vb = a[key], b[key]
        if isinstance(va, float) or (isinstance(va, list) and va and isinstance(va[0], float)):
            np.testing.assert_allclose(vb, va, rtol=1e-4, atol=1e-5, err_msg=key)
        else:
            assert va == vb, key


@pytest.fixture(scope="module")
def npz(tmp_path_factory):
    return write_npz(tmp_path_factory.mktemp("data") / "syn.npz", n_train=80, n_test=16)


@pytest.fixture(scope="module")
def alone(npz, tmp_path_factory):
    out = tmp_path_factory.mktemp("alone")
    return protocol.run_protocol(["cnn_eca"], _settings(npz, copies=1), str(out), log=None)


def test_packed_runs_match_runs_trained_alone(npz, alone, tmp_path):
    lines = []
    packed = protocol.run_protocol(
        ["cnn_eca"], _settings(npz, copies=2), str(tmp_path), log=lines.append
    )
    assert [r["run"] for r in packed] == [0, 1, 2]
    assert [r["training"]["packed_runs"] for r in packed] == [[0, 1], [0, 1], None]
    assert [r["training"]["copies"] for r in packed] == [2, 2, 1]
    for a, b in zip(alone, packed):
        _assert_same_runs(a, b)
    assert any("packed" in line for line in lines)
    assert not list((tmp_path / "checkpoints").rglob("*.npz"))
    # Each packed run's weights reload into a plain model and give its test accuracy.
    record, weights = protocol.best_run(str(tmp_path), "cnn_eca")
    assert record["training"]["packed_runs"] == [0, 1]
    assert weights.endswith(f"run-{record['run']:04d}.weights.h5")


def test_packed_group_resumes_after_an_interruption(npz, alone, tmp_path):
    class Stop(Exception):
        pass

    calls = []

    def stop_after_first_epoch(model_name, run_index, epoch, seconds):
        calls.append((run_index, epoch))
        if epoch == 1:
            raise Stop

    settings = _settings(npz, copies=3)
    data = protocol.load_protocol_data(settings)
    with pytest.raises(Stop):
        protocol.run_group(
            "cnn_eca", [0, 1, 2], settings, data, str(tmp_path), on_epoch=stop_after_first_epoch
        )
    assert calls == [(0, 0), (1, 0), (2, 0), (0, 1)]
    ckpts = list((tmp_path / "checkpoints").rglob("group-0000-0001-0002.npz"))
    assert len(ckpts) == 1
    # The planner resumes the group as it was packed, even when asked for other groups.
    sid = settings.settings_id(data.fingerprint())
    pending = [("cnn_eca", r) for r in range(3)]
    assert protocol.plan.plan_groups(pending, 2, str(tmp_path), sid) == [("cnn_eca", [0, 1, 2])]
    lines = []
    resumed = protocol.run_protocol(
        ["cnn_eca"], _settings(npz, copies=2), str(tmp_path), data=data, log=lines.append
    )
    assert any("resuming after epoch 1" in line for line in lines)
    assert [r["resumed_at_epochs"] for r in resumed] == [[1], [1], [1]]
    for a, b in zip(alone, resumed):
        _assert_same_runs(a, b)
    assert not list((tmp_path / "checkpoints").rglob("*.npz"))


def test_planner_keeps_single_run_checkpoints_alone(tmp_path):
    sid = "s"
    folder = tmp_path / "checkpoints" / sid / "cnn"
    folder.mkdir(parents=True)
    (folder / "run-0002.npz").write_bytes(b"")
    pending = [("cnn", r) for r in range(6)] + [("cnn_eca", r) for r in range(3)]
    groups = protocol.plan.plan_groups(pending, 4, str(tmp_path), sid)
    assert groups == [
        ("cnn", [0, 1, 3, 4]),
        ("cnn", [2]),
        ("cnn", [5]),
        ("cnn_eca", [0, 1, 2]),
    ]


def test_one_packed_run_diverging_leaves_the_others_alone(npz, alone, tmp_path, monkeypatch):
    build_copies = parallel.build_copies

    def poison_second(*args, **kwargs):
        copies = build_copies(*args, **kwargs)
        # NaN logits (a NaN conv kernel would not do: ReLU maps NaN to 0 on TF CPU).
        bias = copies[1].get_layer("logits").bias
        bias.assign(np.full(bias.shape, np.nan, "float32"))
        return copies

    monkeypatch.setattr(parallel, "build_copies", poison_second)
    lines = []
    records = protocol.run_protocol(
        ["cnn_eca"], _settings(npz, runs=2, copies=2), str(tmp_path), log=lines.append
    )
    assert records[1]["diverged"] and records[1]["diverged_epoch"] == 1
    assert records[1]["test_accuracy"] is None and records[1]["epochs_trained"] == 1
    assert not records[0]["diverged"]
    _assert_same_runs(alone[0], records[0])
    assert any("diverged" in line for line in lines)


@pytest.mark.parametrize(
    "kwargs, match",
    [
        ({"copies": 0}, r"`copies` must be an integer >= 1"),
        ({"jit_compile": "yes"}, r"`jit_compile` must be True, False or None"),
        (
            {"mixed_precision": "float16"},
            r"`mixed_precision` must be None \(float32\) or one of .* got 'float16'",
        ),
        ({"mixed_precision": "mixed_float16", "copies": 2}, "loss scale is shared"),
    ],
)
def test_fast_settings_reject_bad_values(kwargs, match):
    with pytest.raises(ValueError, match=match):
        protocol.ProtocolSettings(**kwargs)


def test_mixed_precision_enters_the_settings_id_only_when_set():
    plain = protocol.ProtocolSettings()
    assert "mixed_precision" not in plain.comparable("abc")  # float32 ids are unchanged
    for other in (
        protocol.ProtocolSettings(jit_compile=True),
        protocol.ProtocolSettings(jit_compile=False, copies=4),
    ):
        assert other.settings_id("abc") == plain.settings_id("abc")
    bf16 = protocol.ProtocolSettings(mixed_precision="mixed_bfloat16")
    assert bf16.comparable("abc")["mixed_precision"] == "mixed_bfloat16"
    assert bf16.settings_id("abc") != plain.settings_id("abc")


def test_resolve_training_follows_the_fast_path_unless_set():
    from keras_attn.training import fast_path

    default = protocol.resolve_training(protocol.ProtocolSettings())
    assert default["jit_compile"] is fast_path()["jit_compile"]
    assert default["copies"] == fast_path()["copies"]
    forced = protocol.resolve_training(protocol.ProtocolSettings(jit_compile=True, copies=3))
    assert forced["jit_compile"] is True and forced["copies"] == 3


def test_mixed_bfloat16_and_jit_runs_record_what_they_used(npz, tmp_path):
    settings = _settings(npz, runs=1, epochs=1, mixed_precision="mixed_bfloat16", jit_compile=True)
    (record,) = protocol.run_protocol(["cnn_eca"], settings, str(tmp_path), log=None)
    assert record["training"]["mixed_precision"] == "mixed_bfloat16"
    assert record["comparable_settings"]["mixed_precision"] == "mixed_bfloat16"
    # Keras runs without XLA while TensorFlow op determinism is on; the record says so.
    expected_jit = True
    if keras.backend.backend() == "tensorflow":
        from tensorflow.python.framework import config  # the check Keras itself makes

        expected_jit = not config.is_op_determinism_enabled()
    assert record["training"]["jit_compile"] is expected_jit
    assert 0.0 <= record["test_accuracy"] <= 1.0
    assert keras.config.dtype_policy().name == "float32"  # the policy is restored


def _script_main():
    from keras_attn.cli import protocol as command

    return command.main


def test_cli_speed_flags_reach_the_records(npz, tmp_path, capsys):
    out = tmp_path / "out"
    args = ["--data-dir", str(npz), "--models", "cnn_eca", "--runs", "2", "--epochs", "1"]
    args += ["--batch-size", "16", "--val-size", "16", "--override", "blocks=[4, 8]"]
    args += ["--override", "dense_units=16", "--copies", "2", "--no-jit", "--no-report"]
    args += ["--out", str(out), "--progress-every", "0"]
    assert _script_main()(args) == 0
    assert "jit off, float32, up to 2 run(s)" in capsys.readouterr().out
    records = [json.loads(p.read_text()) for p in sorted(out.rglob("run-*.json"))]
    assert [r["training"]["packed_runs"] for r in records] == [[0, 1], [0, 1]]
    assert all(r["training"]["jit_compile"] is False for r in records)
    assert _script_main()(["--copies", "0", "--out", str(out)]) == 2
    assert "`copies` must be an integer >= 1" in capsys.readouterr().err
    assert _script_main()(["--mixed-precision", "mixed_float16", "--copies", "2"]) == 2
    assert "loss scale is shared" in capsys.readouterr().err
