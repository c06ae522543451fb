"""Tests of keras_attn.protocol and keras-attn protocol.

Tiny synthetic data (64 train / 16 val / 16 test images of 32x32) keeps each
training run to a few seconds on a CPU.
"""

import json
import os
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import keras
import pytest
from data_helpers import SRC, TIMING_KEYS, copy_cifar_subset, write_npz

import keras_attn
from keras_attn import protocol, report
from keras_attn.protocol import budget as budget_mod

#: ``keras-attn protocol`` in a fresh interpreter (PYTHONPATH: this checkout).
COMMAND = [sys.executable, "-m", "keras_attn", "protocol"]


def _settings(npz, **kw):
    base = dict(runs=2, epochs=2, batch_size=16, data=str(npz), val_size=16, threads=2)
    base.update(kw)
    return protocol.ProtocolSettings(**base)


def _same_result(a, b):
    """Records agree on everything but timings and the resume history."""
    skip = TIMING_KEYS | {"resumed_at_epochs", "environment", "settings"}
    return {k: v for k, v in a.items() if k not in skip} == {
        k: v for k, v in b.items() if k not in skip
    }


def _subprocess_env(**extra):
    env = dict(os.environ, TF_CPP_MIN_LOG_LEVEL="3", PYTHONPATH=str(SRC), **extra)
    return env


@pytest.fixture(scope="module")
def npz(tmp_path_factory):
    return write_npz(tmp_path_factory.mktemp("data") / "syn.npz", n_train=80, n_test=16)


@pytest.fixture(scope="module")
def single(npz, tmp_path_factory):
    """One machine: cnn, 2 runs x 2 epochs."""
    out = tmp_path_factory.mktemp("single")
    records = protocol.run_protocol(["cnn"], _settings(npz), str(out), log=None)
    return out, records


# --------------------------------------------------------------------------- settings


@pytest.mark.parametrize(
    "kwargs, match",
    [
        ({"runs": 0}, r"`runs` must be an integer >= 1, got 0"),
        ({"epochs": -1}, r"`epochs` must be an integer >= 1, got -1"),
        ({"learning_rate": 0}, "learning_rate"),
        ({"optimizer": "lion"}, r"`optimizer` must be one of .* got 'lion'"),
        ({"optimizer": "adam", "momentum": 0.9}, "applies to optimizer 'sgd' only"),
        ({"batch_size": 0}, "batch_size"),
        ({"val_size": 0}, "val_size"),
        ({"train_limit": 0}, "train_limit"),
    ],
)
def test_settings_reject_bad_values(kwargs, match):
    with pytest.raises(ValueError, match=match):
        protocol.ProtocolSettings(**kwargs)


def test_settings_defaults_follow_the_study():
    s = protocol.ProtocolSettings()
    assert (s.runs, s.epochs, s.learning_rate, s.optimizer, s.val_size) == (
        16,
        10,
        0.1,
        "sgd",
        5000,
    )
    assert s.data == "tfds:cifar10" and not s.download
    # the settings id ignores how data is found and how many threads ran ...
    assert s.settings_id("fp") == protocol.ProtocolSettings(threads=7, cache_dir="/x").settings_id(
        "fp"
    )
    # ... but not the training settings or the data content
    assert s.settings_id("fp") != protocol.ProtocolSettings(learning_rate=0.01).settings_id("fp")
    assert s.settings_id("fp") != s.settings_id("other data")


@pytest.mark.parametrize("spec", ["3/2", "0/2", "2/0", "a/b", "1-2", "1/2/3", ""])
def test_bad_shard_specs_are_rejected(spec):
    with pytest.raises(ValueError, match=r"I/N|1 <= I <= N"):
        protocol.parse_shard(spec)


def test_shards_partition_the_tasks():
    models = ["cnn", "cnn_eca", "cnn_cbam"]
    full = protocol.plan_tasks(models, 5)
    assert full[:3] == [("cnn", 0), ("cnn_eca", 0), ("cnn_cbam", 0)]  # run by run
    parts = [protocol.plan_tasks(models, 5, f"{i}/4") for i in range(1, 5)]
    assert sorted(t for p in parts for t in p) == sorted(full)
    assert sum(len(p) for p in parts) == len(full) == 15
    study = keras_attn.zoo.STUDY_VARIANTS
    assert protocol.plan_tasks(None, 1) == [(m, 0) for m in study]


def test_unknown_model_and_bad_runs_are_rejected():
    with pytest.raises(ValueError, match=r"Unknown model\(s\) \['resnet'\]; registered"):
        protocol.plan_tasks(["cnn", "resnet"], 2)
    with pytest.raises(ValueError, match="runs"):
        protocol.plan_tasks(["cnn"], 0)
    with pytest.raises(ValueError, match="duplicates"):
        protocol.plan_tasks("cnn,cnn", 1)


# --------------------------------------------------------------------------- determinism, shards


def test_same_seed_same_settings_gives_identical_results(single, npz, tmp_path):
    out, records = single
    again = protocol.run_one(
        "cnn", 0, _settings(npz), protocol.load_protocol_data(_settings(npz)), str(tmp_path)
    )
    first = records[0]
    assert first["run"] == 0 and first["seed"] == 0
    assert again["test_accuracy"] == first["test_accuracy"]
    assert again["test_loss"] == first["test_loss"]  # bitwise, not approximately
    assert again["val_loss"] == first["val_loss"]
    assert _same_result(first, again)
    # a different seed gives a different run (the comparison above can fail)
    assert records[1]["seed"] == 1 and records[1]["val_loss"] != first["val_loss"]


def test_record_holds_every_setting(single):
    out, records = single
    rec = records[0]
    for key in (
        "model", "run", "seed", "best_epoch", "val_accuracy", "test_accuracy",
        "trainable_params", "wall_time_s", "settings", "data", "environment", "model_config",
    ):  # fmt: skip
        assert key in rec
    assert rec["trainable_params"] == 2_625_866
    assert len(rec["val_accuracy"]) == 2 and rec["best_epoch"] in (1, 2)
    assert rec["best_val_accuracy"] == max(rec["val_accuracy"])
    s = rec["settings"]
    assert (s["optimizer"], s["learning_rate"], s["batch_size"]) == ("sgd", 0.1, 16)
    assert rec["data"]["source"]["kind"] == "npz" and rec["data"]["split"]["val_size"] == 16
    env = rec["environment"]
    assert env["backend"] == keras.backend.backend()
    assert env["versions"]["keras"] == keras.__version__ and env["device"]
    assert "TF_ENABLE_ONEDNN_OPTS" in env and "threads" in env
    path = Path(out) / "records" / rec["settings_id"] / "cnn" / "run-0000.json"
    assert json.loads(path.read_text()) == rec  # one JSON line per record file
    assert not (Path(out) / "checkpoints").exists()  # cleaned up after the record


def test_shard_union_equals_one_machine(single, npz, tmp_path):
    out_single, _ = single
    for shard in ("2/2", "1/2"):  # any order, one shared folder
        protocol.run_protocol(["cnn"], _settings(npz), str(tmp_path), shard=shard, log=None)
    a, b = report.load_records(out_single), report.load_records(tmp_path)
    assert [(r["model"], r["run"]) for r in b] == [("cnn", 0), ("cnn", 1)]
    assert all(_same_result(x, y) for x, y in zip(a, b))
    strip = lambda rows: [  # noqa: E731
        {
            k: v
            for k, v in r.items()
            if k not in ("mean_epoch_seconds", "mean_epoch_cpu_seconds", "total_wall_time_s")
        }
        for r in rows
    ]
    assert strip(report.summarize(a)) == strip(report.summarize(b))
    assert report.format_markdown(report.summarize(a), a) == report.format_markdown(
        report.summarize(b), b
    )


def test_rerun_skips_finished_runs(single, npz):
    out, records = single
    lines = []
    again = protocol.run_protocol(["cnn"], _settings(npz), str(out), log=lines.append)
    assert again == records
    assert any("2 already finished, 0 to go" in line for line in lines)
    assert not any(line.startswith(("[cnn", "===")) for line in lines)  # nothing trained


def test_mixed_settings_are_refused_unless_allowed(single, npz, tmp_path):
    out = tmp_path / "out"
    shutil.copytree(single[0], out)
    other = _settings(npz, runs=1, epochs=1, learning_rate=0.05)
    with pytest.raises(ValueError, match=r"learning_rate: 0\.1 there, 0\.05 now.*--allow-mixed"):
        protocol.run_protocol(["cnn"], other, str(out), log=None)
    protocol.run_protocol(["cnn"], other, str(out), allow_mixed=True, log=None)
    records = report.load_records(out)
    assert len({r["settings_id"] for r in records}) == 2 and len(records) == 3
    md = report.format_markdown(report.summarize(records), records)
    assert md.count("## Settings `") == 2 and "never pooled" in md


def test_protocol_needs_validation_images(npz, tmp_path):
    data = protocol.load_protocol_data(_settings(npz))
    data.x_val, data.y_val = data.x_val[:0], data.y_val[:0]
    with pytest.raises(ValueError, match="validation"):
        protocol.run_one("cnn", 0, _settings(npz), data, str(tmp_path))


class _DivergeAfter(keras.optimizers.schedules.LearningRateSchedule):
    """lr 0.01 for ``steps`` steps, then infinity (the weights become NaN)."""

    def __init__(self, steps):
        self.steps = steps

    def __call__(self, step):
        return keras.ops.where(step < self.steps, 0.01, float("inf"))

    def get_config(self):
        return {"steps": self.steps}


@pytest.mark.parametrize("good_steps, best_epoch", [(0, None), (4, 1)])
def test_diverged_run_is_recorded_and_reported(npz, tmp_path, monkeypatch, good_steps, best_epoch):
    # 64 training images / batch 16 = 4 steps per epoch: 4 good steps = one good epoch.
    from keras_attn.protocol import fit_trainer, jax_trainer

    for trainer_module in (fit_trainer, jax_trainer):  # whichever trainer runs
        monkeypatch.setattr(
            trainer_module,
            "make_optimizer",
            lambda s, steps=None: keras.optimizers.SGD(_DivergeAfter(good_steps)),
        )
    settings = _settings(npz, runs=1, epochs=3)
    rec = protocol.run_protocol(["cnn"], settings, str(tmp_path), log=None)[0]
    assert rec["diverged"] and rec["status"] == "diverged"
    assert rec["diverged_epoch"] == (best_epoch or 0) + 1
    assert rec["epochs_trained"] == rec["diverged_epoch"]  # stopped, not trained on
    assert rec["best_epoch"] == best_epoch
    if best_epoch is None:
        assert rec["test_accuracy"] is None
    else:
        assert 0 <= rec["test_accuracy"] <= 1
    row = report.summarize(report.load_records(tmp_path))[0]
    assert (
        row["diverged"] == 1 and row["runs"] == 1 and row["n"] == (0 if best_epoch is None else 1)
    )
    md = report.format_markdown([row])
    assert "| `cnn` | 1/1 | 1 |" in md


# --------------------------------------------------------------------------- subprocesses


def _run_script(args, env=None, **kw):
    return subprocess.run(
        [*COMMAND, *args],
        env=env or _subprocess_env(),
        capture_output=True,
        text=True,
        timeout=300,
        **kw,
    )


def test_sigkill_then_resume_matches_an_uninterrupted_run(tmp_path):
    npz = write_npz(tmp_path / "syn.npz", n_train=224, n_test=32)
    args = ["--data-dir", npz, "--val-size", "32", "--models", "cnn", "--runs", "1",
            "--epochs", "3", "--batch-size", "32", "--threads", "2", "--no-report",
            "--checkpoint-every", "0"]  # fmt: skip
    killed, ref = tmp_path / "killed", tmp_path / "reference"
    # The uninterrupted reference run trains alongside the killed and resumed ones (its
    # results do not depend on the machine's load: deterministic ops, same threads).
    reference = subprocess.Popen(
        [*COMMAND, *args, "--out", str(ref)],
        env=_subprocess_env(),
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        proc = subprocess.Popen(
            [*COMMAND, *args, "--out", str(killed)],
            env=_subprocess_env(),
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        deadline = time.monotonic() + 240
        try:
            while not list(killed.glob("checkpoints/*/cnn/run-0000.npz")):
                assert proc.poll() is None, "the run ended before its first checkpoint"
                assert time.monotonic() < deadline, "no checkpoint within 240 s"
                time.sleep(0.02)
            proc.send_signal(signal.SIGKILL)  # mid-epoch 2: epoch 1 is checkpointed
        finally:
            proc.kill()
            proc.wait()
        assert proc.returncode == -signal.SIGKILL
        assert not list(killed.glob("records/*/*/*.json"))

        resumed = _run_script([*args, "--out", str(killed)])
        assert resumed.returncode == 0, resumed.stderr[-3000:]
        assert "resuming after epoch" in resumed.stdout
        _, ref_err = reference.communicate(timeout=300)
    finally:
        reference.kill()
        reference.wait()
    assert reference.returncode == 0, ref_err[-3000:]

    [rec_k] = report.load_records(killed)  # exactly one record: none lost, none duplicated
    [rec_r] = report.load_records(ref)
    assert rec_k["resumed_at_epochs"] and not rec_r["resumed_at_epochs"]
    assert rec_k["val_loss"] == rec_r["val_loss"] and rec_k["train_loss"] == rec_r["train_loss"]
    assert rec_k["test_loss"] == rec_r["test_loss"]
    assert _same_result(rec_k, rec_r)
    assert not list(killed.glob("checkpoints/**/*.npz"))


def test_smoke_preset_on_real_images_under_jax(cifar_folder, tmp_path):
    """The smoke preset's path with the real folder loader on real JPEGs, JAX backend.

    A two-block ``cnn`` (``--override``): on a 2-core CPU the full one spends minutes in
    XLA; its size is the TensorFlow path's (``test_readme.py`` runs the preset's models)."""
    pytest.importorskip("jax")
    root = copy_cifar_subset(cifar_folder, tmp_path / "cifar", n_train=12, n_test=6)
    out = tmp_path / "out"
    result = _run_script(
        [
            "--preset",
            "smoke",
            "--backend",
            "jax",
            "--data-dir",
            str(root),
            "--models",
            "cnn",
            "--runs",
            "1",
            "--epochs",
            "1",
            "--val-size",
            "20",
            "--val-limit",
            "20",
            "--train-limit",
            "100",
            "--test-limit",
            "60",
            "--out",
            str(out),
            "--override",
            "blocks=[4,8]",
            "--override",
            "dense_units=8",
        ]  # fmt: skip
    )
    assert result.returncode == 0, result.stderr[-3000:]
    [rec] = report.load_records(out)
    assert rec["environment"]["backend"] == "jax"
    assert rec["model_config"]["blocks"] == [4, 8]
    assert rec["data"]["source"]["kind"] == "folder"
    assert rec["data"]["class_names"][0] == "airplane"
    assert rec["data"]["counts"] == {"train": 100, "val": 20, "test": 60}
    assert rec["settings"]["batch_size"] == 64  # from the preset
    assert 0 <= rec["test_accuracy"] <= 1
    assert (out / "report.md").exists() and (out / "report.png").exists()


def test_the_command_runs_on_the_backend_keras_has(tmp_path):
    """``keras-attn protocol`` in this process; test_backends.py runs it again under PyTorch."""
    backend = keras.backend.backend()
    npz = write_npz(tmp_path / "syn.npz", n_train=48, n_test=16)
    out = tmp_path / "out"
    code = _script_main()(
        ["--backend", backend, "--data-dir", npz, "--val-size", "16", "--models", "cnn",
         "--runs", "1", "--epochs", "1", "--batch-size", "16", "--out", str(out), "--no-report",
         "--override", "blocks=[4,8]", "--override", "dense_units=8", "--quiet"]
    )  # fmt: skip
    assert code == 0
    [rec] = report.load_records(out)
    assert rec["environment"]["backend"] == backend and rec["test_accuracy"] is not None


def test_another_backend_than_the_loaded_one_is_refused(tmp_path, capsys):
    """From Python, Keras' backend is already fixed: the command says so, trains nothing."""
    other = "jax" if keras.backend.backend() != "jax" else "tensorflow"
    before = os.environ.get("KERAS_BACKEND")
    with pytest.raises(SystemExit) as stop:
        _script_main()(["--backend", other, "--out", str(tmp_path / "out")])
    assert stop.value.code == 2 and os.environ.get("KERAS_BACKEND") == before
    err = capsys.readouterr().err.strip().splitlines()[-1]
    assert f"--backend {other}: Keras is already loaded on {keras.backend.backend()}" in err
    assert not (tmp_path / "out").exists()


# --------------------------------------------------------------------------- command line


def _script_main():
    from keras_attn.cli import protocol as command

    return command.main


@pytest.mark.parametrize(
    "args, match",
    [
        (["--models", "cnn,resnet"], r"Unknown model\(s\) \['resnet'\]"),
        (["--runs", "0"], "`runs` must be an integer >= 1, got 0"),
        (["--shard", "3/2"], "Shard spec '3/2' is out of range"),
        (["--data-dir", "/no/such/folder"], "does not exist"),
    ],
)
def test_cli_errors_are_clear(args, match, capsys, tmp_path):
    code = _script_main()([*args, "--out", str(tmp_path / "out")])
    assert code == 2
    import re

    assert re.search(match, capsys.readouterr().err)


def test_cli_help_lists_presets_and_assumptions(capsys):
    with pytest.raises(SystemExit) as e:
        _script_main()(["--help"])
    assert e.value.code == 0
    text = capsys.readouterr().out
    assert "smoke:" in text and "study:" in text and "cnn_conv_ae" in text
    assert "assumptions where the study is silent" in text


def test_cli_empty_data_dir_is_refused(tmp_path, capsys):
    (tmp_path / "empty").mkdir()
    assert _script_main()(["--data-dir", str(tmp_path / "empty"), "--out", str(tmp_path)]) == 2
    assert "has no 'train' sub-folder" in capsys.readouterr().err


def test_tf_io_gfile_output_folder(npz):
    """A non-local output folder (TensorFlow's in-memory ram:// file system stands in
    for gs:// and the like): records, checkpoints and the report go through tf.io.gfile."""
    tf = pytest.importorskip("tensorflow")
    out = f"ram://protocol-{os.getpid()}-{time.monotonic_ns()}/out"
    [rec] = protocol.run_protocol(["cnn"], _settings(npz, runs=1, epochs=1), out, log=None)
    [loaded] = report.load_records(out)
    assert loaded == rec
    paths = report.write_report(out)
    assert all(p.startswith("ram://") for p in paths.values())
    with tf.io.gfile.GFile(paths["png"], "rb") as f:
        assert f.read(4) == b"\x89PNG"
    assert tf.io.gfile.glob(out + "/settings/*.json")
    assert not tf.io.gfile.glob(out + "/checkpoints/*/*/*.npz")


# --------------------------------------------------------------------------- time budget


@pytest.mark.parametrize(
    "text, seconds",
    [("90", 90.0), ("90s", 90.0), ("8m", 480.0), ("2h", 7200.0), ("1h30m", 5400.0), (45, 45.0)],
)
def test_parse_duration(text, seconds):
    assert protocol.parse_duration(text) == seconds


@pytest.mark.parametrize("text", ["", "soon", "8 minutes", "-5", "0", "1d"])
def test_parse_duration_rejects_bad_input(text):
    with pytest.raises(ValueError, match="time budget"):
        protocol.parse_duration(text)


@pytest.fixture
def slow_runs(monkeypatch):
    """Every measured group counts as a million times longer than it took."""
    record = budget_mod.TimeBudget.record

    def slower(self, model, size, epochs, seconds):
        record(self, model, size, epochs, seconds * 1e6)

    monkeypatch.setattr(budget_mod.TimeBudget, "record", slower)


def test_time_budget_stops_between_runs_and_a_rerun_completes_them(
    single, npz, tmp_path, slow_runs
):
    """A budget too small for a second run: one finishes whole, the rerun does the rest."""
    out_single, _ = single
    lines = []
    first = protocol.run_protocol(
        ["cnn"], _settings(npz), str(tmp_path), log=lines.append, time_budget="1h"
    )
    # Nothing measured yet, so the first run starts; it is never cut half-way.
    assert [(r["model"], r["run"], r["epochs_trained"]) for r in first] == [("cnn", 0, 2)]
    assert any(line.startswith("time budget: stopping before cnn runs [1]") for line in lines)
    assert any("1 run(s) left" in line for line in lines)
    assert not list(Path(tmp_path).glob("checkpoints/*/*/*"))  # no half-made run left behind
    rest = protocol.run_protocol(["cnn"], _settings(npz), str(tmp_path), log=None)
    assert [r["run"] for r in rest] == [0, 1]
    a, b = report.load_records(out_single), report.load_records(tmp_path)
    for x, y in zip(a, b, strict=True):
        assert _same_result(x, y), [k for k in x if x[k] != y.get(k)]


def test_time_budget_estimates_from_records_of_this_device(single):
    out, records = single
    macs = {"cnn": 78_820_352, "cnn_linear_ae": 258_600_000}.get
    budget = budget_mod.TimeBudget(1000.0, macs=macs)
    env = records[0]["environment"]
    budget.add_records(records, env["backend"], env["device"])
    per_run_epoch = sum(r["wall_time_s"] / r["epochs_trained"] for r in records) / len(records)
    need = budget.estimate("cnn", 4, 2)
    assert need == pytest.approx(budget_mod.TimeBudget.MARGIN * per_run_epoch * 4 * 2)
    other = budget_mod.TimeBudget(1000.0, macs=macs)
    other.add_records(records, env["backend"], "GPU: another device")
    assert other.estimate("cnn", 4, 2) is None  # nothing measured on this device
    # A model without records is scaled from a measured one by MACs per image.
    heavier = budget.estimate("cnn_linear_ae", 4, 2)
    assert heavier > need


def test_time_budget_already_spent_starts_nothing(npz, tmp_path, monkeypatch):
    ticks = iter([0.0, 100.0, 100.0, 100.0])
    monkeypatch.setattr(budget_mod, "_clock", lambda: next(ticks))
    lines = []
    done = protocol.run_protocol(
        ["cnn"], _settings(npz), str(tmp_path), log=lines.append, time_budget=10
    )
    assert done == []
    assert any("2 run(s) left" in line for line in lines)


def test_cli_time_budget_exits_zero_with_runs_left(npz, tmp_path, capsys, slow_runs):
    from keras_attn.cli import protocol as script

    out = tmp_path / "out"
    argv = [
        "--models", "cnn", "--runs", "2", "--epochs", "1", "--batch-size", "16",
        "--data-dir", str(npz), "--val-size", "16", "--threads", "2", "--out", str(out),
        "--time-budget", "1h", "--quiet",
    ]  # fmt: skip
    assert script.main(argv) == 0
    printed = capsys.readouterr().out
    assert "1 of 2 runs finished, 1 left; rerun the same command to continue" in printed
    assert (out / "report.md").exists()
    assert script.main([*argv[:-3], "--quiet"]) == 0
    assert "protocol finished" in capsys.readouterr().out
