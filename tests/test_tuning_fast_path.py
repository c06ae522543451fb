"""The search trains on the fast path, with off switches (keras_attn.tuning, scripts/tune.py).

- the HyperModel compiles through `compile_for_training`: jit from `fast_path` by
  default, ``jit_compile=False`` / ``--no-jit`` reach the model;
- ``mixed_precision="mixed_bfloat16"`` builds bfloat16 layers and a trial
  completes (not FAILED);
- the fingerprint: another mixed precision is refused on resume, another jit is
  not; float32 searches keep the fingerprint they always had.
"""

import json
import os
import sys

import keras
import keras_tuner
import numpy as np
import pytest

from keras_attn import tuning
from keras_attn.training import fast_path

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
# A small backbone and space keep trials to seconds on a CPU.
TINY_BASE = {"blocks": [8, 16], "dense_units": 16}
TINY_SPACE = {"first_filters": [2, 4], "growth": [1.0], "final_kernel": [2], "eca": [False]}


def _tiny(**kwargs):
    return tuning.ConvAutoencoderHyperModel(TINY_BASE, space=TINY_SPACE, **kwargs)


def _data(n_train=32, n_val=16):
    rng = np.random.default_rng(0)
    x = rng.integers(0, 256, (n_train + n_val, 32, 32, 3), dtype=np.uint8)
    y = rng.integers(0, 10, n_train + n_val)
    return x[:n_train], y[:n_train], x[n_train:], y[n_train:]


def test_hypermodel_compiles_on_the_fast_path_with_an_off_switch(monkeypatch):
    hp = keras_tuner.HyperParameters()
    model = _tiny().build(hp)
    assert model.jit_compile == fast_path()["jit_compile"]
    assert isinstance(model.optimizer, keras.optimizers.SGD)
    assert float(model.optimizer.learning_rate) == pytest.approx(0.1)
    assert model.loss == "sparse_categorical_crossentropy"
    assert _tiny(jit_compile=False).build(hp).jit_compile is False

    seen = []
    original = tuning.compile_for_training

    def spy(model, **kwargs):
        seen.append(kwargs["jit_compile"])
        return original(model, **kwargs)

    monkeypatch.setattr(tuning, "compile_for_training", spy)
    for jit in (None, True, False):
        _tiny(jit_compile=jit).build(hp)
    assert seen == [None, True, False]
    with pytest.raises(ValueError, match="`jit_compile` must be True, False or None"):
        _tiny(jit_compile="yes")
    with pytest.raises(ValueError, match="`mixed_precision` must be None"):
        _tiny(mixed_precision="bfloat16")


def test_mixed_bfloat16_builds_bf16_layers_and_a_trial_completes(tmp_path):
    model = _tiny(mixed_precision="mixed_bfloat16").build(keras_tuner.HyperParameters())
    convs = [layer for layer in model._flatten_layers() if isinstance(layer, keras.layers.Conv2D)]
    assert convs and all(c.compute_dtype == "bfloat16" for c in convs)
    assert all(c.variable_dtype == "float32" for c in convs)
    assert keras.config.dtype_policy().name == "float32"  # restored after the build

    # The option given to search: the tuner's copy of the HyperModel gets it.
    hm = _tiny()
    lines = []
    x, y, xv, yv = _data()
    tuner = tuning.search(
        hm,
        x,
        y,
        xv,
        yv,
        tuner="random",
        directory=tmp_path,
        project_name="bf16",
        max_trials=1,
        epochs=1,
        batch_size=16,
        mixed_precision="mixed_bfloat16",
        verbose=0,
        log=lines.append,
    )
    assert tuner.hypermodel.mixed_precision == "mixed_bfloat16"
    assert hm.mixed_precision is None  # the caller's HyperModel is left alone
    assert [t.status for t in tuning.read_trials(tuner.project_dir)] == ["COMPLETED"]
    stored = json.loads((tmp_path / "bf16" / tuning.RECORD_FILE).read_text())["search"]
    assert stored["training"]["mixed_precision"] == "mixed_bfloat16"
    summary = [line for line in lines if line.startswith("training: ")]
    assert len(summary) == 1
    assert f"jit_compile={fast_path()['jit_compile']} (fast path: " in summary[0]
    assert fast_path()["reason"] in summary[0]
    assert "dtype policy mixed_bfloat16 (as asked)" in summary[0]
    # The protocol command trains the best config under the policy it was tuned with.
    report = tuning.write_results(tuner.project_dir, tuner.hypermodel, k=1)
    assert report["command"].endswith("--mixed-precision mixed_bfloat16")


def test_resume_refuses_another_mixed_precision_but_not_another_jit(tmp_path):
    kw = {"directory": tmp_path, "project_name": "p", "max_trials": 2, "epochs": 1}
    tuning.make_tuner(_tiny(), "random", **kw)
    stored = json.loads((tmp_path / "p" / tuning.RECORD_FILE).read_text())["search"]
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


def test_search_settings_are_one_list():
    with pytest.raises(TypeError, match=r"make_tuner\(\) got an unexpected keyword argument "
                       r"'epoch'. Did you mean 'epochs'"):  # fmt: skip
        tuning.make_tuner(_tiny(), "random", epoch=1)
    with pytest.raises(TypeError, match=r"search\(\) got an unexpected keyword argument 'top_k'"):
        tuning.search(_tiny(), None, None, None, None, top_k=3)
    checked = tuning.check_search_settings("random", max_trials=2)
    assert {k: v for k, v in checked.items() if k != "top_k"} == {
        **tuning.SEARCH_DEFAULTS,
        "tuner": "random",
        "max_trials": 2,
    }
    with pytest.raises(ValueError, match="`project_name` must be a folder name"):
        tuning.check_search_settings(project_name="a/b")
    with pytest.raises(ValueError, match="`mixed_precision` must be None"):
        tuning.check_search_settings(mixed_precision="fp8")


def _tune_script():
    sys.path.insert(0, os.path.join(REPO, "scripts"))
    try:
        import tune
    finally:
        sys.path.pop(0)
    return tune


@pytest.mark.parametrize(
    "flags, jit, policy",
    [
        ([], None, None),
        (["--no-jit"], False, None),
        (["--jit", "--mixed-precision", "mixed_bfloat16"], True, "mixed_bfloat16"),
    ],
)
def test_script_passes_jit_and_mixed_precision(tmp_path, monkeypatch, capsys, flags, jit, policy):
    from keras_attn import protocol

    tune = _tune_script()
    x, y, xv, yv = _data()
    np.savez(tmp_path / "tiny.npz", x_train=x, y_train=y, x_test=xv, y_test=yv)
    (tmp_path / "base.json").write_text(json.dumps(TINY_BASE))
    captured = {}

    def fake_search(hypermodel, *arrays, **settings):
        captured.update(hypermodel=hypermodel, settings=settings)
        raise RuntimeError("stopped by the test")

    monkeypatch.setattr(protocol, "configure_runtime", lambda *a, **k: {})
    monkeypatch.setattr(tuning, "search", fake_search)
    args = ["--data-dir", tmp_path / "tiny.npz", "--val-size", 8, "--base", tmp_path / "base.json",
            "--tuner", "random", "--directory", tmp_path, *flags]  # fmt: skip
    assert tune.main([str(a) for a in args]) == 1
    assert "stopped by the test" in capsys.readouterr().err
    hm = captured["hypermodel"]
    assert (hm.jit_compile, hm.mixed_precision) == (jit, policy)
    model = hm.build(keras_tuner.HyperParameters())
    if jit is False:
        assert model.jit_compile is False
    conv = next(la for la in model._flatten_layers() if isinstance(la, keras.layers.Conv2D))
    assert conv.compute_dtype == ("bfloat16" if policy else "float32")
    settings = captured["settings"]
    assert set(settings) - {"verbose", "log"} == set(tuning.SEARCH_DEFAULTS)
    assert settings["tuner"] == "random" and settings["project_name"] == "ae_random"


def test_script_jit_flags_exclude_each_other(capsys):
    tune = _tune_script()
    with pytest.raises(SystemExit):
        tune.main(["--jit", "--no-jit"])
    assert "not allowed with argument" in capsys.readouterr().err
    with pytest.raises(SystemExit):
        tune.main(["--mixed-precision", "float16"])
    assert "invalid choice: 'float16'" in capsys.readouterr().err
