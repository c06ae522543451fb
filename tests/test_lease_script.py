"""examples/gpu/lease.sh: the two device calls of a GPU lease, checked on a CPU.

The script's protocol flags and models are real ones; with ``TINY=1`` both calls run on
the JAX backend here (tiny models, a synthetic data set) and leave what a lease brings
back: the benchmark's JSON files and the records' archive.
"""

import json
import os
import re
import shlex
import subprocess
import sys
import tarfile

import pytest
from data_helpers import REPO, write_npz

SCRIPT = REPO / "examples" / "gpu" / "lease.sh"


def _study_tokens():
    text = SCRIPT.read_text()
    block = re.search(r"study\)\n(.*?);;", text, re.S).group(1)
    return shlex.split(" ".join(re.findall(r"\(([^()]*)\)", block)).replace("\\\n", " "))


def test_the_script_is_valid_bash_with_real_flags_and_models():
    import keras_attn
    from keras_attn.cli import protocol as script
    from keras_attn.protocol.settings import PRESETS

    subprocess.run(["bash", "-n", str(SCRIPT)], check=True)
    parser = script.build_parser(PRESETS, list(keras_attn.list_models()))
    known = {s for a in parser._actions for s in a.option_strings}
    flags = {t for t in _study_tokens() if t.startswith("--")}
    assert "--time-budget" in flags and not flags - known, flags - known
    models = re.findall(r"^MODELS=(?:\$MODELS,)?(\S+)$", SCRIPT.read_text(), re.M)
    names = ",".join(models).split(",")
    assert len(names) == 11 and set(names) <= set(keras_attn.list_models())
    assert set(keras_attn.zoo.STUDY_VARIANTS) <= set(names)


@pytest.mark.slow
def test_both_device_calls_run_tiny_on_a_cpu(tmp_path):
    pytest.importorskip("jax")
    out, results = tmp_path / "out", tmp_path / "results"
    npz = write_npz(tmp_path / "syn.npz", n_train=40, n_test=8, size=32)  # 2 blocks need 32x32
    env = {**os.environ, "PYTHON": sys.executable, "TINY": "1", "OUT": str(out)}
    env.update(DATA=npz, RESULTS=str(results), BUDGET="10m", PYTHONPATH=str(REPO))
    for call in ("bench", "study"):
        done = subprocess.run(
            ["bash", str(SCRIPT), call], cwd=REPO, env=env, capture_output=True, text=True
        )
        assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]
    fit = json.loads((out / "bench_fit.json").read_text())
    new = json.loads((out / "bench_jax.json").read_text())
    assert [r["trainer"] for r in fit["rows"]] == ["fit", "fit (packed)"]
    assert {(r["precision"], r["group"]) for r in new["rows"]} == {
        (p, g)
        for p in ("default", "bf16")
        for g in (1, 2)  # TINY=1: cnn, two precisions
    }
    assert all(r["fraction_of_peak"] is None for r in new["rows"])  # a CPU: no known peak
    with tarfile.open(out / "records.tar.gz") as tar:
        names = [n for n in tar.getnames() if n.endswith(".json") and "/records/" in n]
    assert len(names) == 4  # cnn and the ablation, 2 runs each
