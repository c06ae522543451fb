"""keras_attn on a machine with JAX and no TensorFlow (what GPU machines often have).

A second virtual environment holds exactly keras, jax, numpy and pillow (and what
they need); keras_attn is installed there without its dependencies. There, the
package imports, builds every variant, runs a tiny protocol on the JAX backend with
two packed runs, writes its report, exports its best run as ``.keras`` and classifies
an image with it; what needs another package (TensorFlow for SavedModel, ONNX and
TFLite) says so in one line.
"""

import json
import os
import subprocess
import sys
import time
from importlib.metadata import version

import numpy as np
import pytest
from data_helpers import REPO, write_npz
from PIL import Image

pytestmark = pytest.mark.slow

PACKAGES = [f"{name}=={version(name)}" for name in ("keras", "jax", "jaxlib", "numpy", "pillow")]


@pytest.fixture(scope="module")
def jax_env(tmp_path_factory):
    """A venv with only `PACKAGES` and keras_attn (--no-deps); its python, and the time taken."""
    root = tmp_path_factory.mktemp("jaxenv")
    t0 = time.monotonic()
    subprocess.run([sys.executable, "-m", "venv", str(root / "venv")], check=True)
    python = str(root / "venv" / "bin" / "python")
    pip = [python, "-m", "pip", "install", "-q", "--disable-pip-version-check"]
    done = subprocess.run([*pip, *PACKAGES], capture_output=True, text=True)
    if done.returncode != 0:
        pytest.fail(f"pip could not install {PACKAGES}:\n{done.stderr[-2000:]}")
    subprocess.run([*pip, "--no-deps", str(REPO)], check=True, capture_output=True)
    installed = subprocess.run(
        [python, "-m", "pip", "list", "--format=json"], capture_output=True, text=True, check=True
    )
    names = {p["name"].lower().replace("_", "-") for p in json.loads(installed.stdout)}
    return python, names, time.monotonic() - t0


def _run(python, args, cwd, timeout=600):
    env = {k: v for k, v in os.environ.items() if k not in ("PYTHONPATH", "KERAS_BACKEND")}
    env.update(KERAS_BACKEND="jax", TF_CPP_MIN_LOG_LEVEL="3")
    return subprocess.run(
        [python, *args], cwd=cwd, env=env, capture_output=True, text=True, timeout=timeout
    )


def test_the_environment_has_no_tensorflow(jax_env):
    _, names, _ = jax_env
    assert not {"tensorflow", "tensorflow-cpu", "keras-tuner", "tensorflow-datasets"} & names
    assert {"keras", "jax", "numpy", "pillow", "keras-attn"} <= names


def test_build_save_and_load_every_variant_without_tensorflow(jax_env, tmp_path):
    python, _, _ = jax_env
    script = """
import sys, numpy as np, keras, keras_attn
assert "tensorflow" not in sys.modules
for name in keras_attn.list_models("cnn*"):
    keras_attn.build(name, blocks=[4, 8], dense_units=8)
model = keras_attn.build("cnn_conv_ae_eca", blocks=[4, 8], dense_units=8)
model.save("m.keras")
again = keras.saving.load_model("m.keras")
x = np.zeros((2, 32, 32, 3), "float32")
np.testing.assert_allclose(again.predict(x, verbose=0), model.predict(x, verbose=0), atol=1e-6)
assert "tensorflow" not in sys.modules, "something imported tensorflow"
print("ok")
"""
    done = _run(python, ["-c", script], cwd=tmp_path)
    assert done.returncode == 0, done.stderr[-3000:]
    assert done.stdout.strip().endswith("ok")


def test_tiny_protocol_with_two_packed_runs_and_its_report(jax_env, tmp_path):
    python, _, setup_seconds = jax_env
    npz = write_npz(tmp_path / "syn.npz", n_train=80, n_test=16)
    t0 = time.monotonic()
    done = _run(
        python,
        [
            str(REPO / "scripts" / "protocol.py"),
            "--backend",
            "jax",
            "--models",
            "cnn",
            "--runs",
            "2",
            "--epochs",
            "1",
            "--batch-size",
            "16",
            "--copies",
            "2",
            "--data-dir",
            npz,
            "--val-size",
            "16",
            "--out",
            str(tmp_path / "out"),
        ],  # fmt: skip
        cwd=tmp_path,
    )
    assert done.returncode == 0, done.stderr[-3000:]
    records = sorted((tmp_path / "out" / "records").glob("*/cnn/run-*.json"))
    assert len(records) == 2
    rec = json.loads(records[0].read_text())
    assert rec["environment"]["backend"] == "jax" and rec["training"]["packed_runs"] == [0, 1]
    assert (tmp_path / "out" / "report.md").exists()
    print(f"JAX-only env: set up in {setup_seconds:.0f}s, protocol {time.monotonic() - t0:.0f}s")

    # The best run exports as .keras on JAX; each TensorFlow format says in one line what
    # it needs; the export classifies an image there.
    export = [str(REPO / "scripts" / "export.py"), str(tmp_path / "out"), "--model", "cnn"]
    done = _run(python, [*export, "--out-root", str(tmp_path / "saved")], cwd=tmp_path)
    assert done.returncode == 0, done.stderr[-3000:]
    err = done.stderr.strip().splitlines()
    assert err[0].startswith("note: TensorFlow is not installed: running on jax"), err
    for line, fmt in zip(err[1:], ("saved_model", "onnx", "tflite")):
        assert line.startswith(f"skipping {fmt}: the ") and "pip install tensorflow" in line
    assert sorted(p.name for p in (tmp_path / "saved" / "cnn").iterdir()) == [
        "model.json",
        "model.keras",
    ]
    for fmt in ("saved_model", "onnx", "tflite"):
        done = _run(python, [*export, "--formats", f"keras,{fmt}"], cwd=tmp_path)
        assert done.returncode == 2 and "Traceback" not in done.stderr, done.stderr[-2000:]
        last = done.stderr.strip().splitlines()[-1]
        assert last.startswith("error: the ") and "pip install tensorflow" in last, last
    image = tmp_path / "cat.png"
    Image.fromarray(np.full((40, 48, 3), 128, np.uint8)).save(image)
    predict = [str(REPO / "scripts" / "predict.py"), str(tmp_path / "saved" / "cnn"), str(image)]
    done = _run(python, predict, cwd=tmp_path)
    assert done.returncode == 0 and "  1. " in done.stdout, done.stderr[-2000:]


@pytest.mark.parametrize(
    "args, needs",
    [
        (["-c", "import keras_attn.tuning"], "keras-tuner"),
        (
            ["-c", "from keras_attn.data import load_dataset; load_dataset('tfds:cifar10')"],
            "tensorflow-datasets",
        ),  # fmt: skip
    ],
)
def test_what_needs_another_package_says_so_in_one_line(jax_env, tmp_path, args, needs):
    python, _, _ = jax_env
    done = _run(python, args, cwd=tmp_path)
    assert done.returncode != 0
    last = done.stderr.strip().splitlines()[-1]
    assert needs in last and "pip install" in last, done.stderr[-2000:]


def test_scripts_name_the_missing_package(jax_env, tmp_path):
    python, _, _ = jax_env
    done = _run(
        python,
        [
            str(REPO / "scripts" / "protocol.py"),
            "--backend",
            "jax",
            "--models",
            "cnn",
            "--runs",
            "1",
            "--epochs",
            "1",
            "--out",
            str(tmp_path / "o"),
        ],  # fmt: skip
        cwd=tmp_path,
    )
    assert done.returncode == 2, done.stderr[-2000:]
    assert "Traceback" not in done.stderr
    last = done.stderr.strip().splitlines()[-1]
    assert last.startswith("error: ") and "pip install tensorflow-datasets" in last


def test_benchmark_without_tensorflow(jax_env, tmp_path):
    python, _, _ = jax_env
    out = tmp_path / "bench.json"
    args = ["--tiny", "--models", "cnn", "--no-fit-check", "--no-pipeline", "--output", str(out)]
    done = _run(python, [str(REPO / "scripts" / "benchmark.py"), *args], cwd=tmp_path)
    assert done.returncode == 0, done.stderr[-3000:]
    result = json.loads(out.read_text())
    assert [r["model"] for r in result["results"]] == ["cnn"]
    assert result["environment"]["backend"] == "jax"
