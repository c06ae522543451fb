"""The project folder as state (keras_attn.tuning.project).

- a folder made before a change must resume after it: the record
  (``<project>/keras_attn_search.json``) that keras_attn/tuning.py wrote as of commit
  6bb9c5b (before it became a package) is kept below, and must match the same search
  today (base configs are compared as `keras_attn.get_config` writes them); never
  update it to make a change pass;
- a folder made by a different search is refused with the differences listed
  (and --overwrite starts again); another mixed precision is a different search,
  another jit setting is not.
"""

import hashlib
import json

import pytest
from tuning_helpers import FAST_SPACE, TINY_SPACE, tiny

from keras_attn import tuning
from keras_attn.tuning.project import RECORD_FILE

# The pinned search's backbone and space (kept here: the pins below depend on them).
PIN_BASE = {"blocks": [8, 16], "dense_units": 16}
PIN_SPACE = {
    "first_filters": [2, 4],
    "growth": [1.0, 2.0],
    "final_kernel": [2, 3],
    "attention_position": ["pre_activation", "post_norm"],
    "learning_rate": [0.05],
}

# search_record(the pinned HyperModel with seed=3, "hyperband", epochs=4, batch_size=32, factor=2,
# seed=5, data_fingerprint="abc123"), as json.dumps(..., sort_keys=True).
PINNED_RECORD = (
    '{"data": "abc123", "format": 1, "hypermodel": {"base_config": {"attention": [], '
    '"attention_position": "pre_activation", "blocks": [8, 16], "bn_epsilon": 1e-05, '
    '"bn_momentum": 0.9, "cbam": {"epsilon": 1e-05, "momentum": 0.9, "reduction": 16, '
    '"spatial_kernel_size": 7}, "cbam_channel": {"reduction": 16}, "cbam_spatial": '
    '{"epsilon": 1e-05, "kernel_size": 7, "momentum": 0.9}, "conv_ae": {"activation": '
    '"relu", "filters": [12, 24, 48], "final_kernel": 3}, "dense_units": 16, "dropout": 0.5, '
    '"eca": {"b": 1, "gamma": 2, "kernel_size": null}, "head": "softmax", "input_shape": '
    '[32, 32, 3], "linear_ae": {"activation": "relu", "units": [128, 64, 12]}, "name": '
    '"cnn", "num_classes": 10, "pixel_scale": 255.0, "sites": "all", "spatial_dropout": '
    '0.25}, "class": "ConvAutoencoderHyperModel", "seed": 3, "space": {"activation": '
    '["relu"], "attention_position": ["pre_activation", "post_norm"], "eca": [false, true], '
    '"final_kernel": [2, 3], "first_filters": [2, 4], "growth": [1.0, 2.0], '
    '"learning_rate": [0.05], "max_depth": null, "min_depth": 1, "sites": {"all": '
    '[1, 2, 3, 4], "block1": [1, 2], "block2": [3, 4]}}}, "training": {"batch_size": 32, '
    '"epochs": 4, "loss": "sparse_categorical_crossentropy", "optimizer": "sgd"}, "tuner": '
    '{"factor": 2, "kind": "hyperband", "objective": "val_accuracy", "seed": 5}}'
)


def _pinned(seed=1):
    return tuning.ConvAutoencoderHyperModel(PIN_BASE, space=PIN_SPACE, seed=seed)


def test_a_folder_an_older_version_made_resumes(tmp_path):
    """The record PINNED_RECORD (written before model configs listed only the gates in use)
    matches the same search today, and the folder holding it resumes."""
    record = tuning.search_record(
        _pinned(seed=3),
        "hyperband",
        epochs=4,
        batch_size=32,
        factor=2,
        seed=5,
        data_fingerprint="abc123",
    )
    old = json.loads(PINNED_RECORD)
    assert tuning.project.record_differences(old, record) == []
    project = tmp_path / "old"
    project.mkdir()
    sha = hashlib.sha256(json.dumps(old, sort_keys=True).encode()).hexdigest()
    (project / RECORD_FILE).write_text(json.dumps({"search": old, "sha256": sha}))
    tuning.project.prepare_project(project, record)  # resumes: no error
    other = tuning.search_record(_pinned(seed=4), "hyperband", epochs=4, batch_size=32)
    assert tuning.project.record_differences(old, other) == [
        "hypermodel.seed: folder has 3, this search has 4",
        "tuner.factor: folder has 2, this search has 3",
        "tuner.seed: folder has 5, this search has 1",
    ]


def test_a_folder_of_a_different_search_is_refused(tmp_path):
    kw = {"directory": tmp_path, "project_name": "p", "max_trials": 2, "epochs": 1}
    wider = {**TINY_SPACE, "first_filters": [2, 8]}
    tuning.make_tuner(tiny(), "random", **kw)
    tuning.make_tuner(tiny(), "random", **kw)  # same search: resumes
    with pytest.raises(ValueError, match=r"different search(.|\n)*space.first_filters"):
        tuning.make_tuner(tiny(wider), "random", **kw)
    with pytest.raises(ValueError, match=r"tuner.kind: folder has \"random\""):
        tuning.make_tuner(tiny(), "hyperband", **kw)
    with pytest.raises(ValueError, match="training.batch_size"):
        tuning.make_tuner(tiny(), "random", batch_size=7, **kw)
    tuning.make_tuner(tiny(), "random", **{**kw, "max_trials": 5})  # max_trials: not recorded
    tuning.make_tuner(tiny(wider), "random", overwrite=True, **kw)
    stored = json.loads((tmp_path / "p" / RECORD_FILE).read_text())
    assert stored["search"]["hypermodel"]["space"]["first_filters"] == [2, 8]
    # A KerasTuner folder that keras_attn did not make.
    (tmp_path / "other" / "trial_0").mkdir(parents=True)
    with pytest.raises(ValueError, match="not made by keras_attn.tuning"):
        tuning.make_tuner(tiny(), "random", **{**kw, "project_name": "other"})
    # A damaged record.
    (tmp_path / "p" / RECORD_FILE).write_text("{")
    with pytest.raises(ValueError, match="is damaged"):
        tuning.make_tuner(tiny(wider), "random", **kw)


def test_resume_refuses_another_mixed_precision_but_not_another_jit(tmp_path):
    def _tiny(**kwargs):
        return tiny(FAST_SPACE, **kwargs)

    kw = {"directory": tmp_path, "project_name": "p", "max_trials": 2, "epochs": 1}
    tuning.make_tuner(_tiny(), "random", **kw)
    stored = json.loads((tmp_path / "p" / RECORD_FILE).read_text())["search"]
    # float32: the fingerprint old folders have (no mixed_precision key, no jit).
    assert set(stored["training"]) == {"epochs", "batch_size", "optimizer", "loss"}
    assert "jit" not in json.dumps(stored)
    tuning.make_tuner(_tiny(), "random", jit_compile=True, **kw)
    tuning.make_tuner(_tiny(jit_compile=False), "random", **kw)
    tuning.make_tuner(_tiny(), "random", mixed_precision="float32", **kw)
    with pytest.raises(
        ValueError,
        match=r'different search(.|\n)*training.mixed_precision: folder has "float32", '
        r'this search has "mixed_bfloat16"',
    ):
        tuning.make_tuner(_tiny(), "random", mixed_precision="mixed_bfloat16", **kw)

    kw["project_name"] = "bf16"
    tuning.make_tuner(_tiny(mixed_precision="mixed_bfloat16"), "random", **kw)
    tuning.make_tuner(_tiny(mixed_precision="mixed_bfloat16", jit_compile=False), "random", **kw)
    with pytest.raises(ValueError, match=r'mixed_precision: folder has "mixed_bfloat16"'):
        tuning.make_tuner(_tiny(), "random", **kw)
    with pytest.raises(ValueError, match=r'this search has "mixed_float16"'):
        tuning.make_tuner(_tiny(mixed_precision="mixed_float16"), "random", **kw)
    # make_tuner's float32 overrides a mixed-precision HyperModel.
    with pytest.raises(ValueError, match=r'this search has "float32"'):
        tuning.make_tuner(
            _tiny(mixed_precision="mixed_bfloat16"), "random", mixed_precision="float32", **kw
        )
