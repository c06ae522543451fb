"""Tests of keras_attn.runtime: threads, deterministic ops, device and versions."""

import keras
import pytest

from keras_attn import protocol, runtime


def _keras_sees_determinism():
    """Whether Keras' TensorFlow trainer sees op determinism on (it then drops XLA)."""
    from tensorflow.python.framework import config

    return config.is_op_determinism_enabled()


@pytest.mark.skipif(keras.backend.backend() != "tensorflow", reason="TensorFlow's switch")
def test_configure_runtime_turns_determinism_on_and_off():
    on = runtime.configure_runtime(threads=2, deterministic=True)
    assert on["deterministic"] is True and _keras_sees_determinism()
    assert runtime.runtime_settings() == on
    off = runtime.configure_runtime(threads=2, deterministic=False)
    assert off["deterministic"] is False and not _keras_sees_determinism()
    assert runtime.runtime_settings()["deterministic"] is False
    # The returned dict is a copy: changing it does not change what is recorded.
    off["deterministic"] = "changed"
    assert runtime.runtime_settings()["deterministic"] is False


def test_protocol_reconfigures_only_when_determinism_changes(monkeypatch):
    calls = []

    def fake_configure(threads=None, deterministic=True):
        calls.append(deterministic)
        runtime._SETTINGS.clear()
        runtime._SETTINGS.update({"deterministic": bool(deterministic)})
        return dict(runtime._SETTINGS)

    monkeypatch.setattr(runtime, "_SETTINGS", {})
    monkeypatch.setattr(runtime, "_tf_determinism", lambda: None)  # only the fake's record
    monkeypatch.setattr(protocol.loop, "configure_runtime", fake_configure)
    protocol.loop.ensure_runtime(protocol.ProtocolSettings())
    protocol.loop.ensure_runtime(protocol.ProtocolSettings())  # already so: untouched
    protocol.loop.ensure_runtime(protocol.ProtocolSettings(deterministic=False))
    protocol.loop.ensure_runtime(protocol.ProtocolSettings(deterministic=False))
    assert calls == [True, False]


def test_protocol_turns_determinism_back_on_when_something_turned_it_off():
    if keras.backend.backend() != "tensorflow":
        pytest.skip("TensorFlow's op determinism")
    from tensorflow.python.framework import config

    runtime.configure_runtime(threads=2, deterministic=True)
    config.disable_op_determinism()  # behind configure_runtime's back
    assert runtime.runtime_settings()["deterministic"] is False
    protocol.loop.ensure_runtime(protocol.ProtocolSettings())
    assert config.is_op_determinism_enabled()
    config.disable_op_determinism()


def test_device_description_names_cpu_and_cores_without_accelerator(monkeypatch):
    monkeypatch.setattr(runtime, "accelerators", lambda: [])
    line = runtime.device_description()
    assert line.startswith(f"CPU: {runtime.cpu_name()} (") and line.endswith("cores usable)")
    monkeypatch.setattr(runtime, "accelerators", lambda: ["gpu:H100", "gpu:H100"])
    assert runtime.device_description() == "GPU: gpu:H100, gpu:H100"


def test_dist_version_reads_installed_and_absent_distributions():
    assert runtime.dist_version("keras") == keras.__version__
    assert runtime.dist_version("no-such-distribution-keras-attn") is None
