"""keras-attn tune, examples/slurm/tune.sbatch, and the tuner where KerasTuner is missing.

- help shows presets; bad flags fail with a clear message;
- --jit / --no-jit and --precision reach the HyperModel;
- the printed protocol command runs the protocol on the search's data (its source
  and split, without the search's limits), the best config and learning rate;
- the sbatch example passes the script only flags it has, and its chief and worker on
  127.0.0.1 (KerasTuner's distributed mode) run the search to the end;
- without keras-tuner, ``import keras_attn.tuning`` and the script fail with one
  line naming the package; ``import keras_attn`` never imports it (or TensorFlow).
"""

import dataclasses
import json
import os
import re
import shlex
import socket
import subprocess
import sys
import time

import keras_tuner
import numpy as np
import pytest
from tuning_helpers import FAST_SPACE, REPO, TINY_BASE, random_data, tune_script

import keras_attn
from keras_attn import runtime, tuning
from keras_attn.cli import arguments as _cli
from keras_attn.data import DataSettings, save_npz
from keras_attn.tuning import presets as tuning_settings

SBATCH = os.path.join(REPO, "examples", "slurm", "tune.sbatch")
NO_KERAS_TUNER = "error: keras_attn.tuning needs KerasTuner, which is not installed: " + (
    "pip install keras-tuner"
)


def _protocol_parser():
    from keras_attn.cli import protocol as command
    from keras_attn.protocol.settings import PRESETS

    return command.build_parser(PRESETS, list(keras_attn.list_models()))


def test_script_help_shows_presets_and_bad_flags_fail(capsys):
    tune = tune_script()
    with pytest.raises(SystemExit) as e:
        tune.main(["--help"])
    assert e.value.code == 0
    out = capsys.readouterr().out
    for name, preset in tuning_settings.PRESETS.items():
        assert f"  {name}: {preset['description']}" in out
    assert "KERASTUNER_TUNER_ID=chief" in out
    # Where the data come from, as the code reads them (no folder only the developers have).
    assert "CIFAR-10 through tensorflow-datasets, prepared once with --download" in out
    assert "../shared" not in out and "--data-dir PATH" in out
    with pytest.raises(SystemExit):
        tune.main(["--tuner", "grid"])
    assert "invalid choice: 'grid'" in capsys.readouterr().err
    assert tune.main(["--max-trials", "0", "--data-dir", "nowhere"]) == 2
    assert "`max_trials` must be an integer >= 1 or None, got 0" in capsys.readouterr().err


@pytest.mark.parametrize(
    "flags, jit, policy",
    [
        ([], None, None),
        (["--no-jit"], False, None),
        (["--jit", "--precision", "bf16"], True, "mixed_bfloat16"),
    ],
)
def test_script_passes_jit_and_mixed_precision(tmp_path, monkeypatch, capsys, flags, jit, policy):
    tune = tune_script()
    x, y, xv, yv = random_data(n_train=32, n_val=16)
    np.savez(tmp_path / "tiny.npz", x_train=x, y_train=y, x_test=xv, y_test=yv)
    (tmp_path / "base.json").write_text(json.dumps(TINY_BASE))
    captured = {}

    def fake_search(hypermodel, *arrays, **settings):
        captured.update(hypermodel=hypermodel, settings=settings)
        raise RuntimeError("stopped by the test")

    monkeypatch.setattr(runtime, "configure_runtime", lambda *a, **k: {})
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
    conv = next(la for la in model._flatten_layers() if la.__class__.__name__ == "Conv2D")
    assert conv.compute_dtype == ("bfloat16" if policy else "float32")
    settings = captured["settings"]
    assert set(settings) - {"verbose", "log"} == set(tuning_settings.SEARCH_DEFAULTS)
    assert settings["tuner"] == "random" and settings["project_name"] == "ae_random"


def test_script_jit_flags_exclude_each_other(capsys):
    tune = tune_script()
    with pytest.raises(SystemExit):
        tune.main(["--jit", "--no-jit"])
    assert "not allowed with argument" in capsys.readouterr().err
    with pytest.raises(SystemExit):
        tune.main(["--precision", "float16"])
    assert "invalid choice: 'float16'" in capsys.readouterr().err


@pytest.mark.slow
def test_the_printed_protocol_command_trains_on_the_search_data(tmp_path, monkeypatch, capsys):
    x, y, xv, yv = random_data(n_train=48, n_val=16)
    save_npz(tmp_path / "tiny.npz", x, y, xv, yv)
    (tmp_path / "base.json").write_text(json.dumps(TINY_BASE))
    (tmp_path / "space.json").write_text(json.dumps(FAST_SPACE))
    monkeypatch.setattr(runtime, "configure_runtime", lambda *a, **k: {})
    args = [
        "--data-dir", tmp_path / "tiny.npz", "--val-size", 16, "--split-seed", 3,
        "--train-limit", 24, "--val-limit", 8, "--cache-dir", tmp_path / "cache",
        "--base", tmp_path / "base.json", "--space", tmp_path / "space.json",
        "--tuner", "random", "--max-trials", 1, "--epochs", 1, "--batch-size", 8,
        "--directory", tmp_path / "tuning", "--project", "cmd", "--verbose", 0,
    ]  # fmt: skip
    assert tune_script().main([str(a) for a in args]) == 0
    out = capsys.readouterr().out
    assert "data: " in out and ": 24 train / 8 val images" in out
    command = shlex.split(out.strip().splitlines()[-1])
    assert command[:2] == ["keras-attn", "protocol"]

    ap = _protocol_parser()
    parsed = ap.parse_args(command[2:])
    project = tmp_path / "tuning" / "cmd"
    best = json.loads((project / "best_trial.json").read_text())
    assert parsed.models == f"{project / 'best_config.json'},cnn"
    assert (parsed.runs, parsed.learning_rate, parsed.batch_size) == (16, best["learning_rate"], 8)
    searched = DataSettings(
        data=str(tmp_path / "tiny.npz"),
        val_size=16,
        split_seed=3,
        train_limit=24,
        val_limit=8,
        cache_dir=str(tmp_path / "cache"),
    )
    protocol_data = DataSettings(**_cli.data_settings(parsed, ap))
    assert protocol_data == dataclasses.replace(searched, train_limit=None, val_limit=None)
    # The protocol's train / val split holds the search's images in the same roles.
    full, cut = protocol_data.load(), searched.load()
    assert np.array_equal(full.x_train[:24], cut.x_train)
    assert np.array_equal(full.x_val[:8], cut.x_val)


def _free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def test_the_sbatch_example_is_valid_bash_and_passes_only_flags_tune_has():
    subprocess.run(["bash", "-n", SBATCH], check=True)
    text = open(SBATCH).read()
    assert re.search(r"^#SBATCH --ntasks=\d+", text, re.M)
    for var in ("KERASTUNER_TUNER_ID", "KERASTUNER_ORACLE_IP", "KERASTUNER_ORACLE_PORT"):
        assert re.search(rf"^\s*export {var}\b", text, re.M), var
    block = re.search(r"^TUNE_ARGS=\((.*?)^\)", text, re.M | re.S)
    assert block, "the script keeps keras-attn tune's arguments in TUNE_ARGS=( ... )"
    flags = re.findall(r"(?<![\w-])--[a-z][a-z-]*", re.sub(r"#.*", "", block.group(1)))
    parser = tune_script().build_parser(tuning_settings.PRESETS, tuning_settings.TUNERS)
    known = set(parser._option_string_actions)
    assert flags and set(flags) <= known, set(flags) - known
    assert "--directory" in flags  # every process shares one project folder
    assert 'exec keras-attn tune "$@"' in text
    assert 'tune-task "${TUNE_ARGS[@]}"' in text


# Stand-ins for SLURM's commands: srun starts the command once per task, here.
FAKE_SRUN = """#!/bin/bash
while [[ "$1" == --* ]]; do shift; done
pids=()
for ((i = 0; i < SLURM_NTASKS; i++)); do
    SLURM_PROCID=$i "$@" >"$SRUN_LOGS/task-$i.log" 2>&1 &
    pids+=($!)
done
rc=0
for p in "${pids[@]}"; do wait "$p" || rc=$?; done
exit $rc
"""


@pytest.mark.slow
def test_the_sbatch_example_runs_a_chief_and_a_worker(tmp_path):
    """KerasTuner's distributed mode on 127.0.0.1, as the sbatch file starts it (a fake
    ``srun`` runs its tasks here, each into ``$SRUN_LOGS/task-<i>.log``): the chief hands
    out the trials and trains none, the worker trains both, the chief writes the results."""
    x, y, xv, yv = random_data(n_train=32, n_val=16)
    save_npz(tmp_path / "tiny.npz", np.concatenate([x, xv]), np.concatenate([y, yv]), xv, yv)
    (tmp_path / "base.json").write_text(json.dumps(TINY_BASE))
    (tmp_path / "space.json").write_text(json.dumps(FAST_SPACE))
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    (bin_dir / "srun").write_text(FAKE_SRUN)
    (bin_dir / "srun").chmod(0o755)
    # Where this environment has no console script, the same command through the
    # environment's Python (keras_attn installed in it, from the checkout's src/).
    (bin_dir / "keras-attn").write_text(f'#!/bin/sh\nexec "{sys.executable}" -m keras_attn "$@"\n')
    (bin_dir / "keras-attn").chmod(0o755)
    extra = (
        f"--data-dir {tmp_path / 'tiny.npz'} --val-size 16 --base {tmp_path / 'base.json'} "
        f"--space {tmp_path / 'space.json'} --max-trials 2 --epochs 1 --batch-size 16 "
        "--verbose 2"
    )
    env = {
        **os.environ,
        "PATH": f"{bin_dir}:{os.environ['PATH']}",
        "VENV": sys.prefix,
        "REPO": REPO,
        "SLURM_NTASKS": "2",
        "SLURM_JOB_ID": "1",
        "SLURM_CPUS_PER_TASK": "1",
        "KERASTUNER_ORACLE_IP": "127.0.0.1",
        "KERASTUNER_ORACLE_PORT": str(_free_port()),
        "TUNER": "random",
        "DIRECTORY": str(tmp_path / "tuning"),
        "PROJECT": "slurm",
        "TUNE_EXTRA_ARGS": extra,
        "TF_CPP_MIN_LOG_LEVEL": "3",
        "SRUN_LOGS": str(tmp_path),
    }
    t0 = time.monotonic()
    done = subprocess.run(
        ["bash", SBATCH], env=env, cwd=tmp_path, capture_output=True, text=True, timeout=300
    )
    chief, worker = ((tmp_path / f"task-{i}.log").read_text() for i in (0, 1))
    out = done.stdout + done.stderr
    assert done.returncode == 0, out[-2000:] + chief[-2000:] + worker[-2000:]
    assert "chief on 127.0.0.1:" in out and "1 worker(s)" in out
    assert "worker tuner0 done" in worker
    assert "chief (serves the oracle, trains nothing)" in chief
    # The chief handed out the trials (its oracle prints them) and trained none; the worker
    # trained both (one Keras epoch line each).
    assert chief.count("Search: Running Trial #") == 2
    assert " - loss: " not in chief
    assert worker.count(" - loss: ") == 2
    project = tmp_path / "tuning" / "slurm"
    trials = tuning.read_trials(project)
    assert len(trials) == 2 and all(t.status == "COMPLETED" for t in trials)
    assert (project / "chief.json").exists() and (project / "tuner0.json").exists()
    keras_attn.build(json.loads((project / "best_config.json").read_text()))
    assert "keras-attn protocol --models" in chief
    print(f"chief + worker finished in {time.monotonic() - t0:.1f}s")


def _python(code, **env):
    env = {**os.environ, "KERAS_BACKEND": "jax", "PYTHONPATH": os.path.join(REPO, "src"), **env}
    return subprocess.run(
        [sys.executable, "-c", code], cwd=REPO, env=env, capture_output=True, text=True
    )


def test_keras_attn_never_imports_keras_tuner_or_tensorflow():
    done = _python(
        "import sys, keras_attn\n"
        "print(sorted(m for m in ('keras_tuner', 'tensorflow') if m in sys.modules))"
    )
    assert done.returncode == 0, done.stderr[-2000:]
    assert done.stdout.strip() == "[]"


def test_without_keras_tuner_the_error_is_one_line_naming_the_package():
    block = "import sys; sys.modules['keras_tuner'] = None  # as if not installed\n"
    done = _python(block + "import keras_attn.tuning")
    assert done.returncode == 1
    assert done.stderr.strip().splitlines()[-1] == "ImportError: " + NO_KERAS_TUNER[7:]
    assert "keras_tuner" not in done.stderr.replace("sys.modules['keras_tuner']", "")
    done = _python(block + "from keras_attn.cli import main\nsys.exit(main(['tune', '--help']))")
    assert done.returncode == 2
    assert done.stderr.strip() == NO_KERAS_TUNER
    # KerasTuner 1.4 needs six without declaring it: a JAX-only machine may lack it.
    done = _python("import sys; sys.modules['six'] = None\nimport keras_attn.tuning")
    assert done.stderr.strip().splitlines()[-1] == (
        "ImportError: keras_attn.tuning needs KerasTuner, which is installed but cannot be "
        "imported: import of six halted; None in sys.modules. Install what it lacks: "
        "pip install six"
    )
