"""Making the tuner and running the search (keras_attn.tuning.tuner).

- errors: max_trials < 1, unknown tuner, unknown settings, bad data;
- a tiny search on synthetic data finishes, a second run trains nothing, a raised
  max_trials trains only the new trial, failures raise with the error;
- Hyperband resumes trials from their checkpoints; Bayesian runs; a mixed-bfloat16
  trial completes;
- the distributed role comes from KerasTuner's environment variables.
"""

import json
import os
from unittest import mock

import keras_tuner
import pytest
from tuning_helpers import FAST_SPACE, random_data, tiny

import keras_attn
from keras_attn import tuning
from keras_attn.protocol.training import fast_path
from keras_attn.tuning.presets import SEARCH_DEFAULTS
from keras_attn.tuning.project import RECORD_FILE


def test_tuner_and_settings_errors(tmp_path):
    hm = tiny()
    with pytest.raises(ValueError, match=r"Unknown tuner 'grid'.*random, bayesian, hyperband"):
        tuning.make_tuner(hm, "grid", directory=tmp_path)
    with pytest.raises(ValueError, match=r"Did you mean 'bayesian'"):
        tuning.make_tuner(hm, "baysian", directory=tmp_path)
    for bad in (0, -3):
        with pytest.raises(ValueError, match=rf"`max_trials` must be an integer >= 1.*{bad}"):
            tuning.make_tuner(hm, "random", max_trials=bad, directory=tmp_path)
    with pytest.raises(ValueError, match="`epochs`"):
        tuning.make_tuner(hm, "hyperband", epochs=0, directory=tmp_path)
    with pytest.raises(ValueError, match="must be a ConvAutoencoderHyperModel"):
        tuning.make_tuner(object(), "random", directory=tmp_path)
    assert not any(tmp_path.iterdir())  # nothing was written


def test_search_settings_are_one_list():
    with pytest.raises(TypeError, match=r"make_tuner\(\) got an unexpected keyword argument "
                       r"'epoch'. Did you mean 'epochs'"):  # fmt: skip
        tuning.make_tuner(tiny(FAST_SPACE), "random", epoch=1)
    with pytest.raises(TypeError, match=r"search\(\) got an unexpected keyword argument 'top_k'"):
        tuning.search(tiny(FAST_SPACE), None, None, None, None, top_k=3)
    checked = tuning.check_search_settings("random", max_trials=2)
    assert {k: v for k, v in checked.items() if k != "top_k"} == {
        **SEARCH_DEFAULTS,
        "tuner": "random",
        "max_trials": 2,
    }
    with pytest.raises(ValueError, match="`project_name` must be a folder name"):
        tuning.check_search_settings(project_name="a/b")
    with pytest.raises(ValueError, match="`mixed_precision` must be None"):
        tuning.check_search_settings(mixed_precision="fp8")


def test_distributed_role_comes_from_kerastuners_variables():
    keys = ("KERASTUNER_ORACLE_IP", "KERASTUNER_ORACLE_PORT", "KERASTUNER_TUNER_ID")
    env = {k: v for k, v in os.environ.items() if k not in keys}
    oracle = {"KERASTUNER_ORACLE_IP": "127.0.0.1", "KERASTUNER_ORACLE_PORT": "8000"}
    with mock.patch.dict(os.environ, env, clear=True):
        assert tuning.distributed_role() is None
    with mock.patch.dict(os.environ, {**env, **oracle, "KERASTUNER_TUNER_ID": "chief"}, clear=True):
        assert tuning.distributed_role() == "chief"
    with mock.patch.dict(os.environ, {**env, **oracle, "KERASTUNER_TUNER_ID": "t3"}, clear=True):
        assert tuning.distributed_role() == "worker"
    with mock.patch.dict(os.environ, {**env, **oracle}, clear=True):
        with pytest.raises(ValueError, match="KERASTUNER_TUNER_ID is not"):
            tuning.distributed_role()


@pytest.mark.slow
def test_tiny_search_resumes_without_retraining(tmp_path, monkeypatch):
    fits, interrupt = [], {"at": 2}
    original = tuning.ConvAutoencoderHyperModel.fit

    def counting_fit(self, hp, model, *args, **kwargs):
        fits.append(dict(hp.values))
        if len(fits) == interrupt["at"]:
            raise KeyboardInterrupt  # Ctrl-C in the middle of the second trial
        return original(self, hp, model, *args, **kwargs)

    monkeypatch.setattr(tuning.ConvAutoencoderHyperModel, "fit", counting_fit)
    x, y, xv, yv = random_data()
    kw = {
        "tuner": "random",
        "directory": tmp_path,
        "project_name": "tiny",
        "epochs": 1,
        "batch_size": 32,
        "verbose": 0,
        "log": None,
    }
    with pytest.raises(KeyboardInterrupt):
        tuning.search(tiny(), x, y, xv, yv, max_trials=2, **kw)
    project = tmp_path / "tiny"
    assert [t.status for t in tuning.read_trials(project)] == ["COMPLETED", "RUNNING"]
    first_score = tuning.read_trials(project)[0].score

    interrupt["at"] = None
    tuner = tuning.search(tiny(), x, y, xv, yv, max_trials=2, **kw)  # the same command again
    assert len(fits) == 3 and fits[2] == fits[1]  # only the interrupted trial, same point
    trials = tuning.read_trials(tuner.project_dir)
    assert [t.status for t in trials] == ["COMPLETED", "COMPLETED"]
    assert trials[0].score == first_score

    tuning.search(tiny(), x, y, xv, yv, max_trials=2, **kw)  # finished: trains nothing
    assert len(fits) == 3, "a resumed search trained a finished trial again"
    tuning.search(tiny(), x, y, xv, yv, max_trials=3, **kw)  # more trials: only the new one
    assert len(fits) == 4 and fits[3] not in fits[:3]
    trials = tuning.read_trials(tuner.project_dir)
    assert len(trials) == 3 and all(t.status == "COMPLETED" for t in trials)

    hm = tiny()
    report = tuning.write_results(tuner.project_dir, hm, k=2)
    assert [r["rank"] for r in report["rows"]] == [1, 2]
    assert report["rows"][0]["val_accuracy"] >= report["rows"][1]["val_accuracy"]
    with open(report["best_config"]) as f:
        best = json.load(f)
    model = keras_attn.build(best)  # unchanged
    assert model.model_config == best
    assert keras_attn.count_trainable_params(model) == report["rows"][0]["trainable_params"]
    md = open(report["markdown"]).read()
    assert "| rank | trial # (KerasTuner log) | val accuracy | trainable params |" in md
    assert report["command"] in md
    assert report["command"].startswith(
        f"keras-attn protocol --models {report['best_config']},cnn --runs 16 --lr 0.05"
    )
    lines = open(report["csv"]).read().splitlines()
    assert lines[0].startswith("rank,trial_id,val_accuracy,trainable_params") and len(lines) == 3
    best_trial = json.load(open(report["best_trial"]))
    assert best_trial["learning_rate"] == 0.05 and best_trial["config_file"] == "best_config.json"

    # Other data in the same project: refused, not mixed in.
    x2, y2, xv2, yv2 = random_data(seed=1)
    with pytest.raises(ValueError, match="data: folder has"):
        tuning.search(tiny(), x2, y2, xv2, yv2, max_trials=3, **kw)


def test_a_failing_trial_raises_with_its_error(tmp_path, monkeypatch):
    def broken_fit(self, hp, model, *args, **kwargs):
        raise ValueError("boom in fit")

    monkeypatch.setattr(tuning.ConvAutoencoderHyperModel, "fit", broken_fit)
    x, y, xv, yv = random_data()
    kw = {"directory": tmp_path, "project_name": "broken", "epochs": 1, "verbose": 0, "log": None}
    with pytest.raises(RuntimeError, match=r"(?s)1 trial\(s\).*failed.*boom in fit"):
        tuning.search(tiny(), x, y, xv, yv, tuner="random", max_trials=1, **kw)
    with pytest.raises(ValueError, match="`x_train` must be images of shape"):
        tuning.search(tiny(), x[..., :1], y, xv, yv, tuner="random", max_trials=1, **kw)
    with pytest.raises(ValueError, match=r"`y_val` must be integer labels in 0..9"):
        tuning.search(tiny(), x, y, xv, yv + 10, tuner="random", max_trials=1, **kw)


@pytest.mark.slow
def test_hyperband_continues_trials_from_their_checkpoints(tmp_path):
    x, y, xv, yv = random_data()
    tuner = tuning.search(
        tiny(),
        x,
        y,
        xv,
        yv,
        tuner="hyperband",
        directory=tmp_path,
        project_name="hb",
        epochs=2,
        factor=2,
        max_trials=3,
        batch_size=32,
        verbose=0,
        log=None,
    )
    trials = tuning.read_trials(tuner.project_dir)
    assert len(trials) == 3 and all(t.status == "COMPLETED" for t in trials)
    # Bracket 1 of max_epochs=2, factor=2: two 1-epoch trials, then the better one to 2 epochs.
    continued = [t for t in trials if "tuner/trial_id" in t.hyperparameters.values]
    assert len(continued) == 1 and continued[0].hyperparameters.values["tuner/epochs"] == 2
    rows = tuning.top_trials(tuner.project_dir, tiny(), k=5)
    assert len(rows) == 2  # the continued config is listed once, with its best trial
    assert {r["epochs"] for r in rows} <= {1, 2}


def test_bayesian_search_runs(tmp_path):
    pytest.importorskip("sklearn")
    x, y, xv, yv = random_data(n_train=32, n_val=16)
    tuner = tuning.search(
        tiny(),
        x,
        y,
        xv,
        yv,
        tuner="bayesian",
        directory=tmp_path,
        project_name="bo",
        max_trials=1,
        epochs=1,
        batch_size=32,
        verbose=0,
        log=None,
    )
    assert isinstance(tuner, keras_tuner.BayesianOptimization)
    assert [t.status for t in tuning.read_trials(tuner.project_dir)] == ["COMPLETED"]


def test_a_mixed_bfloat16_trial_completes(tmp_path):
    # The option given to search: the tuner's copy of the HyperModel gets it.
    hm = tiny(FAST_SPACE)
    lines = []
    x, y, xv, yv = random_data(n_train=32, n_val=16)
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
    stored = json.loads((tmp_path / "bf16" / RECORD_FILE).read_text())["search"]
    assert stored["training"]["mixed_precision"] == "mixed_bfloat16"
    summary = [line for line in lines if line.startswith("training: ")]
    assert len(summary) == 1
    assert f"jit_compile={fast_path()['jit_compile']} (fast path: " in summary[0]
    assert fast_path()["reason"] in summary[0]
    assert "dtype policy mixed_bfloat16 (as asked)" in summary[0]
    # The protocol command trains the best config under the policy it was tuned with.
    report = tuning.write_results(tuner.project_dir, tuner.hypermodel, k=1)
    assert report["command"].endswith("--precision bf16")
