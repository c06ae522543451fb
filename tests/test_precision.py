"""Precision as a recorded setting (keras_attn.protocol.precision, ProtocolSettings.precision)."""

import json

import pytest
from data_helpers import REPO

from keras_attn import protocol
from keras_attn.protocol import precision

CIFAR_RECORDS = sorted((REPO / "results" / "cifar10" / "records").glob("*/*/run-*.json"))


@pytest.mark.skipif(not CIFAR_RECORDS, reason="no CIFAR-10 records in results/cifar10")
def test_the_default_keeps_the_settings_id_of_the_existing_records():
    for path in CIFAR_RECORDS:
        record = json.loads(path.read_text())
        settings = protocol.ProtocolSettings.from_dict(record["settings"])
        fingerprint = record["comparable_settings"]["data_fingerprint"]
        assert settings.precision is None and settings.trainer is None
        assert settings.settings_id(fingerprint) == record["settings_id"], path
        assert settings.comparable(fingerprint) == record["comparable_settings"]


def test_precision_enters_the_settings_id_when_given_and_bf16_is_mixed_bfloat16():
    ids = {
        p: protocol.ProtocolSettings(precision=p).settings_id("abc")
        for p in (None, "float32", "tf32", "bf16", "fp16")
    }
    assert len(set(ids.values())) == 5
    bf16 = protocol.ProtocolSettings(precision="bf16")
    assert bf16.mixed_precision == "mixed_bfloat16"
    assert bf16.comparable("abc")["mixed_precision"] == "mixed_bfloat16"  # as ids always had it
    assert "precision" not in bf16.comparable("abc")
    old = protocol.ProtocolSettings.from_dict({"mixed_precision": "mixed_bfloat16", "copies": 8})
    assert old.settings_id("abc") == ids["bf16"]
    # The trainer is not part of the id: both compute the same steps.
    assert protocol.ProtocolSettings(trainer="fit").settings_id("abc") == ids[None]


@pytest.mark.parametrize(
    "kwargs, match",
    [
        ({"precision": "fp8"}, r"`precision` must be None or one of .* got 'fp8'"),
        ({"trainer": "torch"}, r"`trainer` must be None or one of \('fit', 'jax'\)"),
    ],
)
def test_bad_precision_and_trainer_settings_say_what_is_valid(kwargs, match):
    with pytest.raises(ValueError, match=match):
        protocol.ProtocolSettings(**kwargs)


def test_jax_matmul_precision_is_set_and_read_back():
    pytest.importorskip("jax")
    import jax

    try:
        assert precision.apply_precision("float32", backend="jax")["backend_switch"] == (
            "jax_default_matmul_precision=float32"
        )
        assert jax.config.jax_default_matmul_precision == "float32"
        precision.apply_precision("tf32", backend="jax")
        assert jax.config.jax_default_matmul_precision == "tensorfloat32"
    finally:
        in_use = precision.apply_precision(None, backend="jax")
    assert in_use == {
        "precision": "default",
        "backend_switch": "jax_default_matmul_precision=default",
    }


def test_the_protocol_script_passes_precision_and_trainer_to_the_settings():
    from keras_attn.cli import protocol as script
    from keras_attn.protocol.settings import PRESETS

    ap = script.build_parser(PRESETS, ["cnn"])
    args = ap.parse_args(["--precision", "tf32", "--trainer", "fit"])
    settings = script.settings_from_args(args, ap, PRESETS["study"])
    assert (settings.precision, settings.trainer) == ("tf32", "fit")
    with pytest.raises(SystemExit):
        ap.parse_args(["--precision", "fp8"])
