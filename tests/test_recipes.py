"""Training recipes (keras_attn.protocol.recipe, keras_attn.data.augment, the settings).

The settings ids of runs without a recipe stay what they were (the 20 records' ids are
checked in test_precision.py); each recipe setting enters the id only when set; a
schedule's learning rate follows its formula; weight decay acts once, coupled or
decoupled; label smoothing is the smoothed cross-entropy; the augmentation gives the same
images in NumPy (``model.fit``'s batches) and in JAX (the JAX trainer's step), and never
touches validation or test images; a recipe trains end to end, its settings in the record.
The JAX trainer's recipe steps are compared with ``model.fit``'s in test_jax_trainer.py.
"""

import dataclasses
import math

import keras
import numpy as np
import pytest
from data_helpers import write_npz

from keras_attn import _fields, protocol
from keras_attn.data import ArrayBatches
from keras_attn.data.augment import AUGMENTATIONS, augment, epoch_augmentation
from keras_attn.protocol.recipe import OneCycle, learning_rate_at, make_loss, make_optimizer
from keras_attn.protocol.settings import RECIPES, ProtocolSettings, recipe_settings

RECIPE_FIELDS = [
    f.name
    for f in dataclasses.fields(ProtocolSettings)
    if f.metadata.get("comparable") == "set" and f.name != "precision"
]
SET = {
    "nesterov": True,
    "weight_decay": 1e-4,
    "weight_decay_mode": "decoupled",
    "schedule": "cosine",
    "step_at": [0.3],
    "step_factor": 0.5,
    "warmup": 0.1,
    "label_smoothing": 0.1,
    "crop_padding": 2,
    "pad_mode": "reflect",
}


def test_recipe_settings_enter_the_settings_id_only_when_set():
    assert sorted(RECIPE_FIELDS) == sorted(SET)
    plain = ProtocolSettings(momentum=0.9)
    assert not set(RECIPE_FIELDS) & set(plain.comparable("abc"))
    assert plain.comparable("abc")["augmentation"] == "none"  # as every id always held it
    ids = {plain.settings_id("abc")}
    for name, value in SET.items():
        changed = ProtocolSettings(momentum=0.9, **{name: value})
        assert changed.comparable("abc")[name] == value
        ids.add(changed.settings_id("abc"))
    ids.add(ProtocolSettings(momentum=0.9, augmentation="flip").settings_id("abc"))
    assert len(ids) == len(SET) + 2


def test_every_recipe_is_valid_and_bad_settings_name_what_is_valid():
    for name in RECIPES:
        settings = ProtocolSettings(**recipe_settings(name))
        make_optimizer(settings, steps_per_epoch=10)
    with pytest.raises(ValueError, match="Unknown recipe 'resnet'.*Valid recipes: study"):
        recipe_settings("resnet")
    for bad, match in [
        ({"schedule": "linear"}, r"`schedule` must be one of .*'onecycle'\), got 'linear'"),
        ({"step_at": [0.5, 1.5]}, r"`step_at` must be a list of numbers in \[0, 1\)"),
        ({"nesterov": True}, "`nesterov=True` needs `momentum` > 0"),
        ({"augmentation": "cutout"}, r"`augmentation` must be one of \('none', 'flip'"),
        ({"label_smoothing": 1.0}, r"`label_smoothing` must be a number >= 0 and < 1"),
    ]:
        with pytest.raises(ValueError, match=match):
            ProtocolSettings(**bad)
    with pytest.raises(ValueError, match="adamw.*decoupled"):
        make_optimizer(ProtocolSettings(optimizer="adamw", weight_decay=1e-4))


def test_each_schedule_follows_its_formula():
    lr, epochs, per_epoch = 0.4, 5, 20
    total = epochs * per_epoch

    def at(schedule, step, **kw):
        settings = ProtocolSettings(learning_rate=lr, epochs=epochs, schedule=schedule, **kw)
        return learning_rate_at(settings, step, per_epoch)

    for step in (0, 37, 50, 51, 75, 76, 99):
        drops = sum(step > round(f * total) for f in (0.5, 0.75))
        assert at("step", step) == pytest.approx(lr * 0.1**drops, rel=1e-6)
        cosine = lr * 0.5 * (1 + math.cos(math.pi * step / total))
        assert at("cosine", step) == pytest.approx(cosine, rel=1e-5, abs=1e-7)
        warm = 20
        if step < warm:
            expected = lr * step / warm
        else:
            expected = lr * 0.5 * (1 + math.cos(math.pi * (step - warm) / (total - warm)))
        assert at("warmup_cosine", step, warmup=0.2) == pytest.approx(expected, abs=1e-6)
        one = lr * step / warm if step < warm else lr * (total - step) / (total - warm)
        assert at("onecycle", step, warmup=0.2) == pytest.approx(one, abs=1e-6)
    assert at("constant", 99) == lr
    again = OneCycle.from_config(OneCycle(0.4, 100, 20).get_config())
    assert float(keras.ops.convert_to_numpy(again(60))) == pytest.approx(0.2)


@pytest.mark.parametrize("mode", ["coupled", "decoupled"])
def test_weight_decay_acts_once(mode):
    """One SGD step with momentum 0: w - lr * (g + wd * w) when coupled (an L2 term in the
    gradient); w * (1 - lr * wd) - lr * g when decoupled (Keras' weight_decay first)."""
    lr, wd = 0.1, 0.01
    settings = ProtocolSettings(learning_rate=lr, weight_decay=wd, weight_decay_mode=mode)
    opt = make_optimizer(settings)
    assert (opt.weight_decay is None) == (mode == "coupled")  # never both
    assert getattr(opt, "l2", 0.0) == (wd if mode == "coupled" else 0.0)
    w0, g = np.array([1.0, -2.0, 3.0], "float32"), np.array([0.5, 0.5, -1.0], "float32")
    w = keras.Variable(w0)
    opt.apply([keras.ops.convert_to_tensor(g)], [w])
    if mode == "coupled":
        expected = w0 - lr * (g + wd * w0)
    else:
        expected = w0 * (1 - lr * wd) - lr * g
    np.testing.assert_allclose(keras.ops.convert_to_numpy(w), expected, rtol=1e-6)


def test_label_smoothing_is_the_smoothed_cross_entropy():
    probs = np.array([[0.7, 0.2, 0.1], [0.1, 0.1, 0.8]], "float32")
    labels = np.array([0, 1])
    eps = 0.3
    loss = keras.ops.convert_to_numpy(
        make_loss(ProtocolSettings(label_smoothing=eps))(labels, probs)
    )
    target = np.full((2, 3), eps / 3) + (1 - eps) * np.eye(3)[labels]
    np.testing.assert_allclose(loss, -(target * np.log(probs)).sum(-1), rtol=1e-5)
    plain = make_loss(ProtocolSettings())
    assert plain is keras.losses.sparse_categorical_crossentropy  # the study's, unchanged


@pytest.mark.parametrize("kind", AUGMENTATIONS[1:])
@pytest.mark.parametrize("pad_mode", ["zero", "reflect"])
def test_the_augmentation_is_the_same_in_numpy_and_jax(kind, pad_mode):
    jnp = pytest.importorskip("jax.numpy")
    from keras_attn.protocol.jax_program import augment_on_device

    x = np.random.default_rng(0).integers(0, 256, (16, 6, 5, 3), dtype=np.uint8)
    dy, dx, flip = epoch_augmentation(16, seed=3, epoch=2, kind=kind, padding=2)
    assert flip.any() == ("flip" in kind) and (dy != 2).any() == ("crop" in kind)
    here = augment(x, dy, dx, flip, padding=2, pad_mode=pad_mode)
    there = augment_on_device(
        jnp.asarray(x), jnp.asarray(dy), jnp.asarray(dx), jnp.asarray(flip), padding=2,
        pad_mode=pad_mode,
    )  # fmt: skip
    np.testing.assert_array_equal(here, np.asarray(there))
    same = ~flip & (dy == 2) & (dx == 2)
    np.testing.assert_array_equal(here[same], x[same])  # no crop offset, no flip: unchanged
    np.testing.assert_array_equal(here[flip & (dy == 2) & (dx == 2)],
                                  x[flip & (dy == 2) & (dx == 2)][:, :, ::-1])  # fmt: skip


def test_training_batches_are_augmented_and_validation_batches_are_not():
    x = np.random.default_rng(1).integers(0, 256, (10, 8, 8, 3), dtype=np.uint8)
    y = np.arange(10)
    spec = ("flip_crop", 4, "zero")
    batches = ArrayBatches(x, y, 4, shuffle=True, seed=5, augmentation=spec)
    batches.set_epoch(1)
    order = np.random.default_rng([5, 1]).permutation(10)
    dy, dx, flip = epoch_augmentation(10, seed=5, epoch=1, kind="flip_crop", padding=4)
    idx = order[4:8]
    expected = augment(x[idx], dy[idx], dx[idx], flip[idx], padding=4, pad_mode="zero")
    np.testing.assert_array_equal(batches[1][0], expected.astype("float32"))
    plain = ArrayBatches(x, y, 4)  # validation and test: as they are
    np.testing.assert_array_equal(plain[0][0], x[:4].astype("float32"))


def test_a_recipe_trains_end_to_end_and_is_recorded(tmp_path, capsys):
    from keras_attn.cli import protocol as script

    npz = write_npz(tmp_path / "d.npz", n_train=48, n_test=8, size=16)
    args = ["--data-dir", npz, "--models", "cnn", "--runs", "1", "--epochs", "2",
            "--recipe", "fast", "--batch-size", "16", "--val-size", "8", "--trainer", "fit",
            "--override", "blocks=[4, 8]", "--override", "dense_units=8", "--no-report",
            "--progress-every", "0", "--out", str(tmp_path / "out")]  # fmt: skip
    assert script.main(args) == 0
    (path,) = (tmp_path / "out" / "records").rglob("run-0000.json")
    import json

    record = json.loads(path.read_text())
    settings = record["settings"]
    assert (settings["schedule"], settings["label_smoothing"], settings["epochs"]) == (
        "onecycle",
        0.2,
        2,  # the flag over the recipe
    )
    assert settings["batch_size"] == 16 and settings["nesterov"] is True
    assert record["comparable_settings"]["augmentation"] == "flip_crop"
    assert record["augmentation"].startswith("horizontal flip (p=0.5), random 4-pixel crop")
    assert np.isfinite(record["train_loss"]).all()
    ap = script.build_parser(protocol.settings.PRESETS)
    assert _fields.given(ap.parse_args(["--step-at", "0.3,0.6"]), ProtocolSettings) == {
        "step_at": [0.3, 0.6]
    }


def test_docs_protocol_md_lists_every_setting_as_declared():
    import settings_doc

    page = settings_doc.PAGE.read_text()
    assert page == settings_doc.page_with_table(page), (
        "docs/protocol.md's settings table is out of date: run `python tests/settings_doc.py`"
    )
    for name in RECIPES:
        assert f"`{name}`" in page  # each recipe is described, with its source
