"""The KerasTuner search (keras_attn.tuning, scripts/tune.py).

- the space: defaults are the study's values; every point of the space gives a
  valid config (exhaustive), and sampled points, the deepest and the widest
  build and run;
- errors: empty space, single-point space, max_trials < 1, unknown tuner, a
  project folder made by a different search (and --overwrite);
- a tiny search on synthetic data finishes, a second run trains nothing, a
  raised max_trials trains only the new trial, failures raise with the error;
- Hyperband resumes trials from their checkpoints; Bayesian runs;
- a chief and a worker on 127.0.0.1 (KerasTuner's distributed mode) run the
  command-line script to the end.
"""

import json
import os
import socket
import subprocess
import sys
import time

import keras
import keras_tuner
import numpy as np
import pytest

import keras_attn
from keras_attn import tuning
from keras_attn.backbone import site_sizes
from keras_attn.layers import max_depth

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
# A small backbone and space keep trials to seconds on a CPU.
TINY_BASE = {"blocks": [8, 16], "dense_units": 16}
TINY_SPACE = {
    "first_filters": [2, 4],
    "growth": [1.0, 2.0],
    "final_kernel": [2, 3],
    "attention_position": ["pre_activation", "post_norm"],
    "learning_rate": [0.05],
}


def _data(n_train=64, n_val=32, seed=0):
    rng = np.random.default_rng(seed)
    x = rng.integers(0, 256, (n_train + n_val, 32, 32, 3), dtype=np.uint8)
    y = rng.integers(0, 10, n_train + n_val)
    return x[:n_train], y[:n_train], x[n_train:], y[n_train:]


def _tiny(**space):
    return tuning.ConvAutoencoderHyperModel(TINY_BASE, space={**TINY_SPACE, **space})


def _enumerate(space, skip=()):
    """Every combination of active values of a HyperParameters space (conditions respected)."""
    params = [p for p in space if p.name not in skip]

    def rec(i, values):
        if i == len(params):
            yield dict(values)
            return
        p = params[i]
        if not all(c.is_active(values) for c in p.conditions):
            yield from rec(i + 1, values)
            return
        for v in p.values:
            values[p.name] = v
            yield from rec(i + 1, values)
            del values[p.name]

    yield from rec(0, {})


def _sample(space, rng):
    """One random point, drawn like KerasTuner's random oracle (active values only)."""
    hps = keras_tuner.HyperParameters()
    for p in space:
        hps.merge([p])
        if hps.is_active(p):
            hps.values[p.name] = p.random_sample(int(rng.integers(1 << 30)))
    return hps.values


# --------------------------------------------------------------------------- the space


def test_defaults_are_the_study_values():
    hm = tuning.ConvAutoencoderHyperModel()
    config = hm.model_config(keras_tuner.HyperParameters())
    study = keras_attn.get_config("cnn_conv_ae")
    # The study's gate at every site, but one final kernel (3) everywhere, not [3, 3, 3, 2].
    expected = {
        **study,
        "name": config["name"],
        "sites": [1, 2, 3, 4],
        "conv_ae": {**study["conv_ae"], "final_kernel": 3},
    }
    assert config == expected
    assert hm.learning_rate(keras_tuner.HyperParameters()) == 0.1
    model = hm.build(keras_tuner.HyperParameters())
    assert isinstance(model.optimizer, keras.optimizers.SGD)
    assert float(model.optimizer.learning_rate) == pytest.approx(0.1)
    same = keras_attn.build("cnn_conv_ae", conv_ae={"final_kernel": 3})
    assert keras_attn.count_trainable_params(model) == keras_attn.count_trainable_params(same)


def test_depth_is_conditioned_on_the_placement():
    hm = tuning.ConvAutoencoderHyperModel()
    # CIFAR sites: 32x32, 30x30 (block 1), 15x15, 13x13 (block 2).
    assert hm.depths == {"block1": [1, 2, 3, 4], "block2": [1, 2, 3], "all": [1, 2, 3]}
    space = {p.name: p for p in hm.hyperparameters().space}
    for placement, depths in hm.depths.items():
        depth = space[f"depth_{placement}"]
        assert list(depth.values) == depths
        assert [(c.name, list(c.values)) for c in depth.conditions] == [("sites", [placement])]
        growth = space[f"growth_{placement}"]
        assert [(c.name, list(c.values)) for c in growth.conditions][1] == (
            f"depth_{placement}",
            [d for d in depths if d >= 2],
        )
    # Other inputs and networks: each placement goes as deep as its smallest site allows.
    for base, shape in (("cnn", (64, 48, 1)), ("cnn3", (32, 32, 3)), ("cnn", (20, 20, 3))):
        hm = tuning.ConvAutoencoderHyperModel(base, input_shape=shape)
        sizes = site_sizes(hm.base_config)
        for placement, sites in hm.space["sites"].items():
            limit = min(max_depth(min(sizes[s - 1][:2])) for s in sites)
            assert hm.depths[placement] == list(range(1, limit + 1))
    assert tuning.ConvAutoencoderHyperModel(space={"max_depth": 2}).depths["block1"] == [1, 2]


def test_every_point_of_the_space_is_a_valid_distinct_config():
    hm = tuning.ConvAutoencoderHyperModel()
    seen = set()
    for values in _enumerate(hm.hyperparameters().space, skip=("learning_rate",)):
        config = hm.model_config(values)  # validates it (keras_attn.get_config)
        key = json.dumps(config, sort_keys=True)
        assert key not in seen, f"two points give one config: {values}"
        seen.add(key)
    assert len(seen) == hm.size()[0] == 2160


@pytest.mark.slow
def test_sampled_deepest_and_widest_configs_build_and_run():
    hm = tuning.ConvAutoencoderHyperModel()
    space = hm.hyperparameters().space
    rng = np.random.default_rng(0)
    points = [_sample(space, rng) for _ in range(8)]
    widest = {"first_filters": 32, "eca": True}
    for placement, depths in hm.depths.items():
        for kernel in (2, 4):  # the final transposed conv's extremes
            points.append(
                {
                    **widest,
                    "sites": placement,
                    f"depth_{placement}": depths[-1],  # the deepest this placement allows
                    f"growth_{placement}": 2.0,
                    "final_kernel": kernel,
                    "attention_position": "post_norm",
                }
            )
    x = np.random.default_rng(1).integers(0, 256, (2, 32, 32, 3)).astype("float32")
    filters = []
    for values in points:
        keras.backend.clear_session()
        model = hm.build(values)
        probs = keras.ops.convert_to_numpy(model(x, training=False))
        assert probs.shape == (2, 10) and np.all(np.isfinite(probs))
        assert np.allclose(probs.sum(axis=1), 1, atol=1e-5)
        filters.append(model.model_config["conv_ae"]["filters"])
    assert [32, 64, 128, 256] in filters  # the widest: deepest block-1 gate, 32 doubling
    # A non-CIFAR input: the deepest of each placement still builds.
    hm = tuning.ConvAutoencoderHyperModel(input_shape=(48, 40, 1), num_classes=3)
    for placement, depths in hm.depths.items():
        keras.backend.clear_session()
        model = hm.build({"sites": placement, f"depth_{placement}": depths[-1]})
        assert model.output_shape == (None, 3)


def test_space_errors_are_clear():
    with pytest.raises(ValueError, match="'growth' is empty"):
        tuning.ConvAutoencoderHyperModel(space={"growth": []})
    with pytest.raises(ValueError, match="'sites' is empty"):
        tuning.ConvAutoencoderHyperModel(space={"sites": {}})
    single = {
        "sites": {"all": [1, 2, 3, 4]},
        "min_depth": 3,
        "max_depth": 3,
        "attention_position": ["pre_activation"],
        "eca": [False],
        "first_filters": [12],
        "growth": [2.0],
        "final_kernel": [3],
        "learning_rate": [0.1],
    }
    with pytest.raises(ValueError, match="single point"):
        tuning.ConvAutoencoderHyperModel(space=single)
    with pytest.raises(ValueError, match="Did you mean 'growth'"):
        tuning.ConvAutoencoderHyperModel(space={"grwth": [2.0]})
    with pytest.raises(ValueError, match=r"'block2' \(sites \[3, 4\]\) allows at most 3"):
        tuning.ConvAutoencoderHyperModel(space={"min_depth": 4})
    with pytest.raises(ValueError, match="sites from 1 to 4"):
        tuning.ConvAutoencoderHyperModel(space={"sites": {"deep": [5]}})
    with pytest.raises(ValueError, match="'post_relu' is not one of"):
        tuning.ConvAutoencoderHyperModel(space={"attention_position": ["post_relu"]})
    with pytest.raises(ValueError, match="does not hold"):
        tuning.ConvAutoencoderHyperModel().model_config({"sites": "block2", "depth_block2": 4})


def test_tuner_and_settings_errors(tmp_path):
    hm = _tiny()
    with pytest.raises(ValueError, match=r"Unknown tuner 'grid'.*random, bayesian, hyperband"):
        tuning.make_tuner(hm, "grid", directory=tmp_path)
    with pytest.raises(ValueError, match=r"Did you mean 'bayesian'"):
        tuning.make_tuner(hm, "baysian", directory=tmp_path)
    for bad in (0, -3):
        with pytest.raises(ValueError, match=rf"`max_trials` must be an integer >= 1.*{bad}"):
            tuning.make_tuner(hm, "random", max_trials=bad, directory=tmp_path)
    with pytest.raises(ValueError, match="`epochs`"):
        tuning.make_tuner(hm, "hyperband", epochs=0, directory=tmp_path)
    assert not any(tmp_path.iterdir())  # nothing was written


def test_a_folder_of_a_different_search_is_refused(tmp_path):
    kw = {"directory": tmp_path, "project_name": "p", "max_trials": 2, "epochs": 1}
    tuning.make_tuner(_tiny(), "random", **kw)
    tuning.make_tuner(_tiny(), "random", **kw)  # same search: resumes
    with pytest.raises(ValueError, match=r"different search(.|\n)*space.first_filters"):
        tuning.make_tuner(_tiny(first_filters=[2, 8]), "random", **kw)
    with pytest.raises(ValueError, match=r"tuner.kind: folder has \"random\""):
        tuning.make_tuner(_tiny(), "hyperband", **kw)
    with pytest.raises(ValueError, match="training.batch_size"):
        tuning.make_tuner(_tiny(), "random", batch_size=7, **kw)
    tuning.make_tuner(_tiny(), "random", **{**kw, "max_trials": 5})  # max_trials: not recorded
    tuning.make_tuner(_tiny(first_filters=[2, 8]), "random", overwrite=True, **kw)
    stored = json.loads((tmp_path / "p" / tuning.RECORD_FILE).read_text())
    assert stored["search"]["hypermodel"]["space"]["first_filters"] == [2, 8]
    # A KerasTuner folder that keras_attn did not make.
    (tmp_path / "other" / "trial_0").mkdir(parents=True)
    with pytest.raises(ValueError, match="not made by keras_attn.tuning"):
        tuning.make_tuner(_tiny(), "random", **{**kw, "project_name": "other"})


# --------------------------------------------------------------------------- searching


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
    x, y, xv, yv = _data()
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
        tuning.search(_tiny(), x, y, xv, yv, max_trials=2, **kw)
    project = tmp_path / "tiny"
    assert [t.status for t in tuning.read_trials(project)] == ["COMPLETED", "RUNNING"]
    first_score = tuning.read_trials(project)[0].score

    interrupt["at"] = None
    tuner = tuning.search(_tiny(), x, y, xv, yv, max_trials=2, **kw)  # the same command again
    assert len(fits) == 3 and fits[2] == fits[1]  # only the interrupted trial, same point
    trials = tuning.read_trials(tuner.project_dir)
    assert [t.status for t in trials] == ["COMPLETED", "COMPLETED"]
    assert trials[0].score == first_score

    tuning.search(_tiny(), x, y, xv, yv, max_trials=2, **kw)  # finished: trains nothing
    assert len(fits) == 3, "a resumed search trained a finished trial again"
    tuning.search(_tiny(), x, y, xv, yv, max_trials=3, **kw)  # more trials: only the new one
    assert len(fits) == 4 and fits[3] not in fits[:3]
    trials = tuning.read_trials(tuner.project_dir)
    assert len(trials) == 3 and all(t.status == "COMPLETED" for t in trials)

    hm = _tiny()
    report = tuning.write_results(tuner.project_dir, hm, k=2)
    assert [r["rank"] for r in report["rows"]] == [1, 2]
    assert report["rows"][0]["val_accuracy"] >= report["rows"][1]["val_accuracy"]
    with open(report["best_config"]) as f:
        best = json.load(f)
    model = keras_attn.build(best)  # unchanged
    assert model.model_config == best
    assert keras_attn.count_trainable_params(model) == report["rows"][0]["trainable_params"]
    md = open(report["markdown"]).read()
    assert "| rank | trial | val accuracy | trainable params |" in md
    assert report["command"] in md
    assert report["command"].startswith(
        f"python scripts/protocol.py --models {report['best_config']},cnn --runs 16 --lr 0.05"
    )
    lines = open(report["csv"]).read().splitlines()
    assert lines[0].startswith("rank,trial_id,val_accuracy,trainable_params") and len(lines) == 3
    best_trial = json.load(open(report["best_trial"]))
    assert best_trial["learning_rate"] == 0.05 and best_trial["config_file"] == "best_config.json"

    # Other data in the same project: refused, not mixed in.
    x2, y2, xv2, yv2 = _data(seed=1)
    with pytest.raises(ValueError, match="data: folder has"):
        tuning.search(_tiny(), x2, y2, xv2, yv2, max_trials=3, **kw)


def test_a_failing_trial_raises_with_its_error(tmp_path, monkeypatch):
    def broken_fit(self, hp, model, *args, **kwargs):
        raise ValueError("boom in fit")

    monkeypatch.setattr(tuning.ConvAutoencoderHyperModel, "fit", broken_fit)
    x, y, xv, yv = _data()
    kw = {"directory": tmp_path, "project_name": "broken", "epochs": 1, "verbose": 0, "log": None}
    with pytest.raises(RuntimeError, match=r"(?s)1 trial\(s\).*failed.*boom in fit"):
        tuning.search(_tiny(), x, y, xv, yv, tuner="random", max_trials=1, **kw)
    with pytest.raises(ValueError, match="`x_train` must be images of shape"):
        tuning.search(_tiny(), x[..., :1], y, xv, yv, tuner="random", max_trials=1, **kw)


@pytest.mark.slow
def test_hyperband_continues_trials_from_their_checkpoints(tmp_path):
    x, y, xv, yv = _data()
    tuner = tuning.search(
        _tiny(),
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
    rows = tuning.top_trials(tuner.project_dir, _tiny(), k=5)
    assert len(rows) == 2  # the continued config is listed once, with its best trial
    assert {r["epochs"] for r in rows} <= {1, 2}


def test_bayesian_search_runs(tmp_path):
    pytest.importorskip("sklearn")
    x, y, xv, yv = _data(n_train=32, n_val=16)
    tuner = tuning.search(
        _tiny(),
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


# --------------------------------------------------------------------------- the script


def _script(*args, env=None, **kwargs):
    return subprocess.Popen(
        [sys.executable, os.path.join(REPO, "scripts", "tune.py"), *map(str, args)],
        cwd=REPO,
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
        **kwargs,
    )


def test_script_help_shows_presets_and_bad_flags_fail(capsys):
    sys.path.insert(0, os.path.join(REPO, "scripts"))
    try:
        import tune
    finally:
        sys.path.pop(0)
    with pytest.raises(SystemExit) as e:
        tune.main(["--help"])
    assert e.value.code == 0
    out = capsys.readouterr().out
    for name, preset in tuning.PRESETS.items():
        assert f"  {name}: {preset['description']}" in out
    assert "KERASTUNER_TUNER_ID=chief" in out
    with pytest.raises(SystemExit):
        tune.main(["--tuner", "grid"])
    assert "invalid choice: 'grid'" in capsys.readouterr().err
    assert tune.main(["--max-trials", "0", "--data-dir", "nowhere"]) == 2
    assert "`max_trials` must be an integer >= 1 or None, got 0" in capsys.readouterr().err


def _free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.mark.slow
def test_distributed_chief_and_worker_on_localhost(tmp_path):
    x, y, xv, yv = _data(n_train=64, n_val=32)
    np.savez(
        tmp_path / "tiny.npz",
        x_train=np.concatenate([x, xv]),
        y_train=np.concatenate([y, yv]),
        x_test=xv,
        y_test=yv,
    )
    (tmp_path / "base.json").write_text(json.dumps(TINY_BASE))
    (tmp_path / "space.json").write_text(json.dumps(TINY_SPACE))
    args = [
        "--data-dir", tmp_path / "tiny.npz", "--val-size", 32,
        "--base", tmp_path / "base.json", "--space", tmp_path / "space.json",
        "--tuner", "random", "--max-trials", 2, "--epochs", 1, "--batch-size", 32,
        "--directory", tmp_path / "tuning", "--project", "dist", "--threads", 1, "--verbose", 2,
    ]  # fmt: skip
    port = str(_free_port())
    base_env = {
        **os.environ,
        "KERASTUNER_ORACLE_IP": "127.0.0.1",
        "KERASTUNER_ORACLE_PORT": port,
        "TF_CPP_MIN_LOG_LEVEL": "3",
    }
    t0 = time.monotonic()
    chief = _script(*args, env={**base_env, "KERASTUNER_TUNER_ID": "chief"})
    worker = _script(*args, env={**base_env, "KERASTUNER_TUNER_ID": "tuner0"})
    outputs = {}
    try:
        for name, proc in (("worker", worker), ("chief", chief)):
            left = max(1.0, 240 - (time.monotonic() - t0))
            outputs[name] = proc.communicate(timeout=left)[0]
    except subprocess.TimeoutExpired:
        for proc in (chief, worker):
            proc.kill()
        logs = {n: p.communicate()[0][-3000:] for n, p in (("chief", chief), ("worker", worker))}
        pytest.fail(f"distributed search did not finish in 240 s: {logs}")
    assert worker.returncode == 0, outputs["worker"][-3000:]
    assert chief.returncode == 0, outputs["chief"][-3000:]
    assert "worker tuner0 done" in outputs["worker"]
    assert "chief (serves the oracle, trains nothing)" in outputs["chief"]
    # The chief handed out the trials (its oracle prints them) and trained none; the worker
    # trained both (one Keras epoch line each).
    assert outputs["chief"].count("Search: Running Trial #") == 2
    assert " - loss: " not in outputs["chief"]
    assert outputs["worker"].count(" - loss: ") == 2
    project = tmp_path / "tuning" / "dist"
    trials = tuning.read_trials(project)
    assert len(trials) == 2 and all(t.status == "COMPLETED" for t in trials)
    assert (project / "chief.json").exists() and (project / "tuner0.json").exists()
    best = json.loads((project / "best_config.json").read_text())
    keras_attn.build(best)
    assert "python scripts/protocol.py --models" in outputs["chief"]
    print(f"chief + worker finished in {time.monotonic() - t0:.1f}s")
