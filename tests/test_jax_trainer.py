"""The JAX trainer (keras_attn.protocol.jax_trainer), on the JAX backend.

Its steps must equal ``model.fit``'s for the same seed and batches; a group of runs must
give each run the record it gets alone; a SIGKILL mid-group then a rerun must give the
records of an uninterrupted group; its checkpoints must be the ``model.fit`` path's; a
group too big for the device must split. Run by tests/test_backends.py in a JAX process;
skipped under the other backends. Tiny models (one block of 4 filters, 8x8 images).
"""

import json
import os
import subprocess
import sys

import keras
import numpy as np
import pytest
from data_helpers import REPO, TIMING_KEYS, write_npz

from keras_attn import protocol
from keras_attn.protocol import fit_trainers, jax_trainer
from keras_attn.protocol.loop import Job

pytestmark = pytest.mark.skipif(
    keras.backend.backend() != "jax", reason="the JAX trainer runs on the JAX backend"
)

TINY = {"blocks": [4], "dense_units": 8}


def _settings(npz, **kw):
    # lr 0.01: float rounding of vectorised convolutions must not be amplified into
    # visibly different runs within two epochs.
    base = dict(runs=2, epochs=2, batch_size=16, data=str(npz), val_size=10, threads=2)
    base.update(learning_rate=0.01, model_overrides=TINY)
    base.update(kw)
    return protocol.ProtocolSettings(**base)


def _close(va, vb, key, exact):
    """Equal, or for numbers (in lists and dicts too) within float tolerance."""
    if isinstance(va, dict) and isinstance(vb, dict) and va.keys() == vb.keys():
        for k in va:
            _close(va[k], vb[k], f"{key}.{k}", exact)
    elif isinstance(va, list) and isinstance(vb, list) and len(va) == len(vb):
        for i, (a, b) in enumerate(zip(va, vb)):
            _close(a, b, f"{key}[{i}]", exact)
    elif isinstance(va, float) and isinstance(vb, float) and not exact:
        np.testing.assert_allclose(vb, va, rtol=1e-4, atol=1e-5, err_msg=key)
    else:
        assert va == vb, key


def _same_records(a, b, exact=False):
    skip = TIMING_KEYS | {"resumed_at_epochs", "environment", "settings", "training"}
    assert set(a) == set(b)
    for key in sorted(set(a) - skip):
        _close(a[key], b[key], key, exact)


@pytest.fixture(scope="module")
def npz(tmp_path_factory):
    # 50 training images, batches of 16: three full batches and a last one of 2.
    return write_npz(tmp_path_factory.mktemp("data") / "syn.npz", n_train=60, n_test=12, size=8)


@pytest.fixture(scope="module")
def alone(npz, tmp_path_factory):
    """Each run trained alone by model.fit."""
    out = tmp_path_factory.mktemp("alone")
    settings = _settings(npz, trainer="fit", copies=1)
    return protocol.run_protocol("cnn_eca", settings, str(out), log=None)


def _job(settings, trainer):
    data = protocol.load_protocol_data(settings)
    spec = protocol.resolve_models(["cnn_eca"])[0]
    training = {**protocol.resolve_training(settings), "trainer": trainer}
    return Job(spec, settings, data, "/nowhere", "sid", training, False, lambda _: None)


def test_steps_equal_model_fit_for_the_same_seeds_and_batches(npz):
    """One epoch (3 full batches and a partial one), dropout on: weights within 1e-5."""
    settings = _settings(npz, epochs=1, learning_rate=0.1)
    scan = jax_trainer.ScanTrainer(_job(settings, "jax"), [0, 1], [0, 1])
    scan.set_epoch(0)
    scan_losses = scan.fit_epoch()
    worst = 0.0
    for i, seed in enumerate([0, 1]):
        fit = fit_trainers.SingleRun(_job(settings, "fit"), [i], [seed])
        fit.set_epoch(0)
        ((loss, acc),) = fit.fit_epoch([])
        model, _ = scan.finished(i)
        for a, b in zip(model.variables, fit.members[0].variables):
            diff = np.abs(np.asarray(a.value, np.float64) - np.asarray(b.value, np.float64))
            worst = max(worst, float(diff.max()))
        assert scan_losses[i][0] == pytest.approx(loss, rel=1e-5)
        assert scan_losses[i][1] == pytest.approx(acc, abs=1e-7)
    print(f"largest weight difference, JAX trainer vs model.fit after 4 steps: {worst:.2e}")
    assert worst < 1e-5


def test_checkpoints_are_the_fit_paths(npz):
    """A group's checkpoint values load into the packed model.fit trainer and back."""
    settings = _settings(npz, epochs=1, optimizer="sgd", momentum=0.9)
    scan = jax_trainer.ScanTrainer(_job(settings, "jax"), [0, 1], [0, 1])
    scan.set_epoch(0)
    scan.fit_epoch()
    scan.keep_best(1)
    model_values, opt_values, bests = scan.checkpoint()
    assert bests[0] is None and bests[1] is not None
    packed = fit_trainers.PackedRuns(_job(settings, "fit"), [0, 1], [0, 1])
    arrays = {"model": model_values, "optimizer": opt_values, "best1": bests[1]}
    packed.load(arrays)  # counts and shapes are checked
    again, opt_again, _ = packed.checkpoint()
    for a, b in zip(model_values + opt_values, again + opt_again):
        np.testing.assert_array_equal(a, b)
    fresh = jax_trainer.ScanTrainer(_job(settings, "jax"), [0, 1], [0, 1])
    fresh.load(arrays)
    for a, b in zip(fresh.checkpoint()[0] + fresh.checkpoint()[1], model_values + opt_values):
        np.testing.assert_array_equal(a, b)


@pytest.fixture(scope="module")
def group(npz, tmp_path_factory):
    """The two runs trained as one group by the JAX trainer (the default on JAX)."""
    out, lines = tmp_path_factory.mktemp("group"), []
    records = protocol.run_protocol("cnn_eca", _settings(npz, copies=2), str(out), log=lines.append)
    return records, out, lines


def test_a_group_gives_each_run_its_record_alone(alone, group):
    group, out, lines = group
    assert [r["training"]["trainer"] for r in group] == ["jax", "jax"]
    assert group[0]["training"]["precision"] == "default"  # which precision ran
    assert group[0]["training"]["precision_switch"] == "jax_default_matmul_precision=default"
    assert [r["training"]["packed_runs"] for r in group] == [[0, 1], [0, 1]]
    for a, b in zip(alone, group):
        assert a["best_epoch"] == b["best_epoch"]
        _same_records(a, b)
    assert not list((out / "checkpoints").rglob("*.npz"))
    assert all(r["mask_statistics"] for r in group)  # the Keras model finished the run
    assert any("(jax trainer)" in line for line in lines)


_KILLED = """
import os, signal, sys
from keras_attn import protocol
settings = protocol.ProtocolSettings(**{settings!r})
def kill(model, run, epoch, seconds):
    if epoch == 1:  # the second epoch: after the first one's checkpoint
        os.kill(os.getpid(), signal.SIGKILL)
data = protocol.load_protocol_data(settings)
protocol.run_group("cnn_eca", [0, 1], settings, data, sys.argv[1], on_epoch=kill)
"""


def test_a_sigkill_mid_group_then_a_rerun_gives_the_same_records(npz, group, tmp_path):
    settings, clean = _settings(npz, copies=2), group[0]
    out = tmp_path / "killed"
    env = {**os.environ, "KERAS_BACKEND": "jax", "PYTHONPATH": str(REPO)}
    script = _KILLED.format(settings=settings.to_dict())
    done = subprocess.run([sys.executable, "-c", script, str(out)], env=env, timeout=900)
    assert done.returncode == -9
    assert len(list((out / "checkpoints").rglob("group-0000-0001.npz"))) == 1
    assert not list((out / "records").rglob("*.json"))
    lines = []
    resumed = protocol.run_protocol("cnn_eca", settings, str(out), log=lines.append)
    assert any("resuming after epoch 1" in line for line in lines)
    assert [r["resumed_at_epochs"] for r in resumed] == [[1], [1]]
    for a, b in zip(clean, resumed):
        _same_records(a, b, exact=True)


def test_a_group_too_big_for_the_device_is_split(npz, alone, tmp_path, monkeypatch):
    real = jax_trainer.ScanTrainer.fit_epoch

    def fit_epoch(self, callbacks=None):
        if len(self.seeds) > 1:  # as XLA says it on a GPU
            raise RuntimeError("RESOURCE_EXHAUSTED: Out of memory while trying to allocate 9 GiB")
        return real(self, callbacks)

    monkeypatch.setattr(jax_trainer.ScanTrainer, "fit_epoch", fit_epoch)
    lines = []
    records = protocol.run_protocol(
        "cnn_eca", _settings(npz, copies=2), str(tmp_path), log=lines.append
    )
    assert any(
        "does not fit in device memory" in line and "groups of 1 and 1" in line for line in lines
    )
    assert [r["training"]["packed_runs"] for r in records] == [None, None]
    for a, b in zip(alone, records):
        _same_records(a, b)
    saved = json.loads(next((tmp_path / "records").rglob("run-0001.json")).read_text())
    assert saved["training"]["copies"] == 1
