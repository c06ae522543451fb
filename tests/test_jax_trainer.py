"""The JAX trainer (keras_attn.protocol.jax_trainer, jax_program), on the JAX backend.

Its steps must equal ``model.fit``'s for the same seed and batches, in every gradient and
epoch form; a group of runs must give each run the record it gets alone; a SIGKILL
mid-group then a rerun must give the records of an uninterrupted group; its mask
statistics, computed on the device, must equal the Keras model's; a model must compile
once for all its groups; a group too big for the device must split. Run by
tests/test_backends.py in a JAX process; skipped under the other backends. Tiny models
(one block of 4 filters, 8x8 images).
"""

import json
import os
import subprocess
import sys

import keras
import numpy as np
import pytest
from data_helpers import SRC, TIMING_KEYS, write_npz

from keras_attn import protocol
from keras_attn.protocol import fit_trainer, jax_trainer
from keras_attn.protocol.loop import Job, group_training
from keras_attn.protocol.settings import EPOCH_FORMS, GRAD_FORMS

pytestmark = pytest.mark.skipif(
    keras.backend.backend() != "jax", reason="the JAX trainer runs on the JAX backend"
)

TINY = {"blocks": [4], "dense_units": 8}
FORMS = [(g, e) for g in GRAD_FORMS for e in EPOCH_FORMS]


def _settings(npz, **kw):
    # lr 0.01: float rounding of vectorised convolutions must not be amplified into
    # visibly different runs within two epochs.
    base = dict(runs=2, epochs=2, batch_size=16, data=str(npz), val_size=10, threads=2)
    base.update(learning_rate=0.01, model_overrides=TINY, checkpoint_every=0)
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
    settings = _settings(npz, trainer="fit")
    return protocol.run_protocol("cnn_eca", settings, str(out), log=None)


def _job(settings, trainer, runs, model="cnn_eca"):
    data = protocol.load_protocol_data(settings)
    spec = protocol.resolve_models([model])[0]
    training = {**protocol.resolve_training(settings), "trainer": trainer, **group_training(runs)}
    return Job(spec, settings, data, "/nowhere", "sid", training, False, lambda _: None)


def _weights(model):
    return [np.asarray(v.value, np.float64) for v in model.variables]


@pytest.mark.parametrize("grad_form,epoch_form", FORMS)
def test_every_form_steps_as_model_fit_for_the_same_seeds_and_batches(npz, grad_form, epoch_form):
    """One epoch (3 full batches and a partial one), dropout on: weights within 1e-5."""
    settings = _settings(npz, epochs=1, learning_rate=0.1, grad_form=grad_form,
                         epoch_form=epoch_form)  # fmt: skip
    group = jax_trainer.JaxTrainer(_job(settings, "jax", [0, 1]), [0, 1], [0, 1])
    assert (group.training["grad_form"], group.training["epoch_form"]) == (grad_form, epoch_form)
    group.set_epoch(0)
    losses = group.fit_epoch()
    worst = 0.0
    for i, seed in enumerate([0, 1]):
        fit = fit_trainer.SingleRun(_job(settings, "fit", [i]), [i], [seed])
        fit.set_epoch(0)
        ((loss, acc),) = fit.fit_epoch([])
        model, _ = group.finished(i)
        for a, b in zip(_weights(model), _weights(fit.model)):
            worst = max(worst, float(np.abs(a - b).max()))
        assert losses[i][0] == pytest.approx(loss, rel=1e-5)
        assert losses[i][1] == pytest.approx(acc, abs=1e-7)
    print(f"{grad_form}/{epoch_form}: largest weight difference vs model.fit: {worst:.2e}")
    assert worst < 1e-5


RECIPE = dict(momentum=0.9, nesterov=True, weight_decay=5e-4, schedule="onecycle", warmup=0.3,
              label_smoothing=0.1, augmentation="flip_crop", crop_padding=2,
              pad_mode="reflect")  # fmt: skip


@pytest.mark.parametrize("grad_form", GRAD_FORMS)
def test_a_recipe_steps_as_model_fit(npz, grad_form):
    """Nesterov momentum, coupled weight decay, a one-cycle schedule, label smoothing, flips
    and reflect-padded crops (the second epoch's): the same weights as model.fit's."""
    settings = _settings(npz, epochs=2, grad_form=grad_form, **RECIPE)
    group = jax_trainer.JaxTrainer(_job(settings, "jax", [0, 1]), [0, 1], [0, 1])
    group.set_epoch(1)
    losses = group.fit_epoch()
    for i, seed in enumerate([0, 1]):
        fit = fit_trainer.SingleRun(_job(settings, "fit", [i]), [i], [seed])
        fit.set_epoch(1)
        ((loss, _),) = fit.fit_epoch([])
        model, _ = group.finished(i)
        worst = max(
            float(np.abs(a - b).max()) for a, b in zip(_weights(model), _weights(fit.model))
        )
        assert losses[i][0] == pytest.approx(loss, rel=1e-5)
        assert worst < 1e-5, worst


def test_a_checkpoint_loads_back_into_a_fresh_group(npz):
    settings = _settings(npz, epochs=1, optimizer="sgd", momentum=0.9)
    group = jax_trainer.JaxTrainer(_job(settings, "jax", [0, 1]), [0, 1], [0, 1])
    group.set_epoch(0)
    group.fit_epoch()
    group.keep_best(1)
    model_values, opt_values, bests = group.checkpoint()
    assert bests[0] is None and bests[1] is not None
    fresh = jax_trainer.JaxTrainer(_job(settings, "jax", [0, 1]), [0, 1], [0, 1])
    assert fresh.program is group.program  # compiled once for both groups
    fresh.load({"model": model_values, "optimizer": opt_values, "best1": bests[1]})
    again, opt_again, bests_again = fresh.checkpoint()
    for a, b in zip(again + opt_again + bests_again[1], model_values + opt_values + bests[1]):
        np.testing.assert_array_equal(a, b)
    with pytest.raises(ValueError, match="Checkpoint holds"):
        fresh.load({"model": model_values[:-1], "optimizer": opt_values})


def test_mask_statistics_on_the_device_equal_the_keras_models(tmp_path):
    """Every kind of gate figure: channel (ECA), channel and spatial (CBAM), additive (GC)."""
    from keras_attn.attention_maps import mask_statistics

    npz = write_npz(tmp_path / "m.npz", n_train=20, n_test=30, size=8)
    settings = _settings(npz, epochs=1, val_size=4)
    model = {"name": "mixed", "attention": ["eca", "cbam", "gc"], **TINY}
    group = jax_trainer.JaxTrainer(_job(settings, "jax", [0, 1], model=model), [0, 1], [0, 1])
    group.set_epoch(0)
    group.fit_epoch()
    group.keep_best(0)
    group.keep_best(1)
    images = protocol.load_protocol_data(settings).x_test
    rows = group.mask_statistics(images)
    for i in range(2):
        keras_model, best = group.finished(i)
        for v, a in zip(keras_model.variables, best):
            v.assign(a)
        expected = mask_statistics(keras_model, images, batch_size=7)
        assert [r["kind"] for r in rows[i]] == [r["kind"] for r in expected]
        for got, want in zip(rows[i], expected):
            assert got.keys() == want.keys()
            for key in ("mean", "std", "min", "max", "spatial_std", "channel_std"):
                assert got[key] == pytest.approx(want[key], abs=1e-5), (got["name"], key)


@pytest.fixture(scope="module")
def group(npz, tmp_path_factory):
    """The two runs trained as one group by the JAX trainer (the default on JAX)."""
    out, lines = tmp_path_factory.mktemp("group"), []
    settings = _settings(npz, group_size=2)
    records = protocol.run_protocol("cnn_eca", settings, str(out), log=lines.append)
    return records, out, lines


def test_a_group_gives_each_run_its_record_alone(alone, group):
    group, out, lines = group
    assert [r["training"]["trainer"] for r in group] == ["jax", "jax"]
    assert group[0]["training"]["precision"] == "default"  # which precision ran
    assert group[0]["training"]["precision_switch"] == "jax_default_matmul_precision=default"
    assert [r["training"]["group"] for r in group] == [[0, 1], [0, 1]]
    assert group[0]["training"]["grad_form"] in GRAD_FORMS
    for a, b in zip(alone, group):
        assert a["best_epoch"] == b["best_epoch"]
        _same_records(a, b)
    assert not list((out / "checkpoints").rglob("*.npz"))
    assert all(r["mask_statistics"] for r in group)
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
    settings, clean = _settings(npz, group_size=2), group[0]
    out = tmp_path / "killed"
    env = {**os.environ, "KERAS_BACKEND": "jax", "PYTHONPATH": str(SRC)}
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
    real = jax_trainer.JaxTrainer.fit_epoch

    def fit_epoch(self, callbacks=None):
        if len(self.seeds) > 1:  # as XLA says it on a GPU
            raise RuntimeError("RESOURCE_EXHAUSTED: Out of memory while trying to allocate 9 GiB")
        return real(self, callbacks)

    monkeypatch.setattr(jax_trainer.JaxTrainer, "fit_epoch", fit_epoch)
    lines = []
    records = protocol.run_protocol(
        "cnn_eca", _settings(npz, group_size=2), str(tmp_path), log=lines.append
    )
    assert any(
        "does not fit in device memory" in line and "groups of 1 and 1" in line for line in lines
    )
    assert [r["training"]["group"] for r in records] == [None, None]
    for a, b in zip(alone, records):
        _same_records(a, b)
    saved = json.loads(next((tmp_path / "records").rglob("run-0001.json")).read_text())
    assert saved["training"]["group_size"] == 1


def test_one_run_diverging_leaves_the_others_alone(npz, alone, tmp_path, monkeypatch):
    import jax.numpy as jnp

    real = jax_trainer.JaxTrainer.__init__

    def poison_second(self, job, runs, seeds):
        real(self, job, runs, seeds)
        trainable = list(self.state[0])
        trainable[-1] = trainable[-1].at[1].set(jnp.nan)  # run 1's logits bias
        self.state = (trainable, self.state[1], self.state[2])

    monkeypatch.setattr(jax_trainer.JaxTrainer, "__init__", poison_second)
    lines = []
    records = protocol.run_protocol(
        "cnn_eca", _settings(npz, group_size=2), str(tmp_path), log=lines.append
    )
    assert records[1]["diverged"] and records[1]["diverged_epoch"] == 1
    assert records[1]["test_accuracy"] is None and records[1]["epochs_trained"] == 1
    assert not records[0]["diverged"]
    _same_records(alone[0], records[0])
    assert any("diverged" in line for line in lines)
