"""The protocol's training loop (keras_attn.protocol.loop): checkpoints by time, the jit,
mixed-precision and JAX trainer settings, and their command-line flags.

Groups of runs are the JAX trainer's (tests/test_jax_trainer.py). Tiny synthetic data
and a slim backbone keep each protocol to seconds.
"""

import json

import keras
import numpy as np
import pytest
from data_helpers import TIMING_KEYS, write_npz

from keras_attn import protocol

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


def _checkpoint_seen(npz, out, every):
    """After each epoch but the first, whether the run's checkpoint was on disk."""
    seen = []
    settings = _settings(npz, runs=1, epochs=3, checkpoint_every=every)

    def on_epoch(model, run, epoch, seconds):
        if epoch:
            seen.append(bool(list(out.rglob("run-0000.npz"))))

    data = settings.data_settings().load()
    protocol.run_group("cnn", [0], settings, data, str(out), on_epoch=on_epoch, log=None)
    assert not list(out.rglob("*.npz"))  # removed once the record is written
    return seen


def test_checkpoints_are_taken_by_time(npz, tmp_path):
    assert _checkpoint_seen(npz, tmp_path / "every", 0) == [True, True]
    assert _checkpoint_seen(npz, tmp_path / "never", 1e9) == [False, False]


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


@pytest.mark.parametrize(
    "kwargs, match",
    [
        ({"group_size": 0}, r"`group_size` must be an integer >= 1"),
        ({"grad_form": "inside"}, r"`grad_form` must be None .* \('per_run', 'summed'\)"),
        ({"checkpoint_every": -1}, r"`checkpoint_every` must be seconds >= 0"),
        ({"jit_compile": "yes"}, r"`jit_compile` must be True, False or None"),
        (
            {"mixed_precision": "float16"},
            r"`mixed_precision` must be None \(float32\) or one of .* got 'float16'",
        ),
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
        protocol.ProtocolSettings(jit_compile=False, group_size=4, checkpoint_every=5),
    ):
        assert other.settings_id("abc") == plain.settings_id("abc")
    bf16 = protocol.ProtocolSettings(mixed_precision="mixed_bfloat16")
    assert bf16.comparable("abc")["mixed_precision"] == "mixed_bfloat16"
    assert bf16.settings_id("abc") != plain.settings_id("abc")


def test_resolve_training_follows_the_fast_path_unless_set():
    from keras_attn.training import fast_path

    default = protocol.resolve_training(protocol.ProtocolSettings())
    assert default["jit_compile"] is fast_path()["jit_compile"]
    jax = keras.backend.backend() == "jax"
    assert default["group_size"] == (fast_path()["group_size"] if jax else 1)
    forced = protocol.resolve_training(protocol.ProtocolSettings(jit_compile=True))
    assert forced["jit_compile"] is True
    fit = protocol.resolve_training(protocol.ProtocolSettings(trainer="fit", group_size=1))
    assert fit["trainer"] == "fit" and fit["group_size"] == 1
    with pytest.raises(ValueError, match="a setting of the JAX trainer"):
        protocol.resolve_training(protocol.ProtocolSettings(trainer="fit", group_size=3))


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
    args += ["--override", "dense_units=16", "--trainer", "fit", "--no-jit", "--no-report"]
    args += ["--out", str(out), "--progress-every", "0", "--checkpoint-every", "0"]
    assert _script_main()(args) == 0
    assert "jit off, float32, up to 1 run(s)" in capsys.readouterr().out
    records = [json.loads(p.read_text()) for p in sorted(out.rglob("run-*.json"))]
    assert [r["training"]["group"] for r in records] == [None, None]
    assert all(r["training"]["jit_compile"] is False for r in records)
    assert records[0]["settings"]["checkpoint_every"] == 0.0
    assert _script_main()(["--group-size", "0", "--out", str(out)]) == 2
    assert "`group_size` must be an integer >= 1" in capsys.readouterr().err
    assert _script_main()(["--trainer", "fit", "--group-size", "2", "--out", str(out)]) == 2
    assert "a setting of the JAX trainer" in capsys.readouterr().err
