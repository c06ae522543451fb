"""The benchmark's command line: ``keras-attn benchmark`` (keras_attn.cli.benchmark)."""

import json
import os
import pathlib
import subprocess
import sys

import keras
import pytest

from keras_attn import benchmark
from keras_attn.cli import benchmark as script

REPO = pathlib.Path(__file__).resolve().parents[1]
SRC = REPO / "src"
parse_args = script.parse_args


def test_parse_args():
    args = parse_args(["--models", "cnn,cnn_eca", "--backend", "jax", "--jit", "--batch", "64"])
    assert (args.models, args.backend, args.jit, args.batch) == ("cnn,cnn_eca", "jax", True, 64)
    assert parse_args([]).jit is None and parse_args(["--no-jit"]).jit is False
    tiny = parse_args(["--tiny"])
    assert (tiny.batch, tiny.windows, tiny.steps) == (4, 1, 1)
    for bad in (["--batch", "0"], ["--jit", "--no-jit"]):
        with pytest.raises(SystemExit):
            parse_args(bad)


def test_gates_on_the_command_line(tmp_path, capsys):
    """--gates with --tiny times ECA's gate and writes JSON."""
    out = tmp_path / "gates.json"
    assert script.main(["--tiny", "--gates", "--output", str(out)]) == 0
    written = json.loads(out.read_text())
    assert [row["name"] for row in written["rows"]] == ["conv3x3", "eca"]
    assert "gate alone (batch 4)" in capsys.readouterr().out


@pytest.mark.slow
def test_script_runs_in_ci_configuration(tmp_path):
    """The CI smoke check: ``python -m keras_attn benchmark --tiny`` in a fresh process."""
    out = tmp_path / "bench.json"
    env = {**os.environ, "TF_CPP_MIN_LOG_LEVEL": "3", "PYTHONPATH": str(SRC)}
    args = ["benchmark", "--tiny", "--output", str(out)]
    cmd = [sys.executable, "-m", "keras_attn", *args]
    done = subprocess.run(cmd, env=env, capture_output=True, text=True, timeout=600)
    assert done.returncode == 0, done.stdout[-2000:] + done.stderr[-3000:]
    result = json.loads(out.read_text())
    assert {r["model"] for r in result["results"]} == {"cnn", "cnn_eca"}
    assert result["settings"]["batch_size"] == 4
    assert "cnn_eca" in done.stdout
    assert "[benchmark]" in done.stderr
    assert result["command"] == ["keras-attn", *args]


def test_backend_flag_reruns_under_that_backend(tmp_path, capfd):
    """Keras is already loaded (TensorFlow here): --backend jax re-runs in a fresh process.

    ``--threads`` is TensorFlow's, so the new process stops at once, saying so under JAX;
    test_jax_only.py runs the benchmark itself under JAX."""
    if keras.backend.backend() == "jax":
        pytest.skip("already under JAX")
    pytest.importorskip("jax")
    argv = ["--tiny", "--models", "cnn", "--threads", "1", "--output", str(tmp_path / "b.json")]
    assert script.main([*argv, "--backend", "jax"]) == 1
    err = capfd.readouterr().err
    assert "--threads and --deterministic apply to the TensorFlow backend only" in err
    assert not (tmp_path / "b.json").exists()


def test_the_package_has_no_other_command_line():
    """``keras-attn benchmark`` is the command: no ``python -m keras_attn.benchmark``."""
    assert not (SRC / "keras_attn" / "benchmark" / "__main__.py").exists()
    for name in ("main", "parse_args"):
        with pytest.raises(AttributeError):
            getattr(benchmark, name)
