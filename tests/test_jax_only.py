"""keras_attn on a machine like the lent GPU machines: JAX, no TensorFlow.

A virtual environment as those machines have it: Python 3.12 and JAX 0.11.2 with NumPy,
SciPy, Pillow and h5py, where the project's Python 3.12 is found (else this interpreter
and its JAX, and the lease script's checks skip). There:

- the lease script (examples/gpu/lease.sh) prepares Keras, namex and optree as wheels,
  then runs its one-command mode with tiny settings; cut mid-study (SIGTERM, as
  ``timeout`` sends), its last records archive is whole and holds the finished runs, and
  a second call carries on to the end; into a folder of other settings it fails, saying
  why;
- keras_attn is built once as a wheel (not an editable install, no checkout needed to
  run it) and installed without its dependencies beside keras; from an empty folder the
  package imports, builds every variant, and the ``keras-attn`` command runs a tiny
  protocol on mock data on the JAX backend with a group of two runs, writes its report,
  exports its best run as ``.keras`` and classifies an image with it; ``python -m
  keras_attn --help`` is the same command; what needs another package (TensorFlow for
  SavedModel, ONNX and TFLite) says so in one line.
"""

import glob
import json
import os
import shutil
import signal
import subprocess
import sys
import tarfile
import time
import zipfile
from importlib.metadata import version
from pathlib import Path

import numpy as np
import pytest
from conftest import FAST_COMPILE_FLAG
from data_helpers import REPO, TIMING_KEYS, write_npz
from PIL import Image

pytestmark = pytest.mark.slow

LEASE = REPO / "examples" / "gpu" / "lease.sh"
#: What the lent machines have (ECOSYSTEM facts in docs/performance.md), Keras excepted.
LENT = ["jax==0.11.2", "jaxlib==0.11.2", "numpy", "scipy", "pillow", "h5py", "rich",
        "ml-dtypes", "absl-py", "packaging", "typing-extensions"]  # fmt: skip
#: Without Python 3.12: this interpreter with this environment's JAX.
HERE = [f"{name}=={version(name)}" for name in ("jax", "jaxlib", "numpy", "pillow")]


def _python312():
    """A Python 3.12 interpreter (on PATH, or pyenv's), or None."""
    candidates = [shutil.which("python3.12")]
    candidates += sorted(glob.glob(os.path.expanduser("~/.pyenv/versions/3.12*/bin/python3.12")))
    for path in filter(None, candidates):
        ok = subprocess.run([path, "-c", "import venv"], capture_output=True)
        if ok.returncode == 0:
            return path
    return None


@pytest.fixture(scope="session")
def wheel(tmp_path_factory):
    """keras_attn's wheel, built once (``pip wheel --no-deps``) from a copy of what the
    sdist holds, so nothing is built in the checkout and no stale build/ file gets in."""
    root = tmp_path_factory.mktemp("wheel")
    source = root / "source"
    shutil.copytree(REPO / "src" / "keras_attn", source / "src" / "keras_attn",
                    ignore=shutil.ignore_patterns("__pycache__"))  # fmt: skip
    for name in ("pyproject.toml", "README.md", "LICENSE"):
        shutil.copy(REPO / name, source / name)
    pip = [sys.executable, "-m", "pip", "wheel", "-q", "--disable-pip-version-check"]
    done = subprocess.run(
        [*pip, "--no-deps", "-w", str(root / "dist"), str(source)], capture_output=True, text=True
    )
    if done.returncode != 0:
        pytest.fail(f"pip could not build the wheel:\n{done.stderr[-3000:]}")
    (path,) = (root / "dist").glob("keras_attn-*-py3-none-any.whl")
    return path


@pytest.fixture(scope="module")
def lent_env(tmp_path_factory):
    """A venv like the lent machines' (no Keras yet): ``(python, is_python312, seconds)``."""
    root = tmp_path_factory.mktemp("jaxenv")
    t0 = time.monotonic()
    py312 = _python312()
    subprocess.run([py312 or sys.executable, "-m", "venv", str(root / "venv")], check=True)
    python = str(root / "venv" / "bin" / "python")
    # --no-compile: Python compiles what the tests import on first import.
    pip = [python, "-m", "pip", "install", "-q", "--disable-pip-version-check", "--no-compile"]
    packages = LENT if py312 else HERE
    done = subprocess.run([*pip, *packages], capture_output=True, text=True, env=_environment())
    if done.returncode != 0:
        pytest.fail(f"pip could not install {packages}:\n{done.stderr[-2000:]}")
    return python, bool(py312), time.monotonic() - t0


@pytest.fixture(scope="module")
def jax_env(lent_env, wheel):
    """The lent-like venv with keras and keras_attn's wheel (--no-deps): its python, the
    installed distributions, and the time taken."""
    python, _, seconds = lent_env
    t0 = time.monotonic()
    pip = [python, "-m", "pip", "install", "-q", "--disable-pip-version-check", "--no-compile"]
    env = _environment()  # no PYTHONPATH: pip must not see this checkout's keras_attn
    done = subprocess.run([*pip, f"keras=={version('keras')}"], capture_output=True, text=True,
                          env=env)  # fmt: skip
    if done.returncode != 0:
        pytest.fail(f"pip could not install keras:\n{done.stderr[-2000:]}")
    subprocess.run([*pip, "--no-deps", str(wheel)], check=True, capture_output=True, env=env)
    installed = subprocess.run(
        [python, "-m", "pip", "list", "--format=json"],
        capture_output=True,
        text=True,
        check=True,
        env=env,
    )
    names = {p["name"].lower().replace("_", "-") for p in json.loads(installed.stdout)}
    return python, names, seconds + time.monotonic() - t0


def _environment(**extra):
    """This process's environment without PYTHONPATH and KERAS_BACKEND, with ``extra``;
    XLA_FLAGS keeps only the flags every XLA knows (an unknown one aborts a process, and
    the tests' second flag is probed against this environment's XLA, not the venv's)."""
    env = {k: v for k, v in os.environ.items() if k not in ("PYTHONPATH", "KERAS_BACKEND")}
    flags = [f for f in env.get("XLA_FLAGS", "").split() if f != FAST_COMPILE_FLAG]
    env["XLA_FLAGS"] = " ".join(flags)
    return {**env, **extra}


def _run(python, args, cwd, timeout=600, backend="jax"):
    """Run ``python ARGS`` (or ``keras-attn ARGS`` when args[0] is "keras-attn") there."""
    env = _environment(TF_CPP_MIN_LOG_LEVEL="3", **({"KERAS_BACKEND": backend} if backend else {}))
    if args[:1] == ["keras-attn"]:
        command = [str(Path(python).parent / "keras-attn"), *args[1:]]  # the console script
    else:
        command = [python, *args]
    return subprocess.run(
        command, cwd=cwd, env=env, capture_output=True, text=True, timeout=timeout
    )


# ---------------------------------------------------------------------- the lease script


@pytest.fixture(scope="module")
def lease(lent_env, tmp_path_factory):
    """The lease script's settings for a tiny study on this CPU, after ``prepare``."""
    python, py312, _ = lent_env
    if not py312:
        pytest.skip("no Python 3.12 here: the lease script is checked as the lent machine runs it")
    root = tmp_path_factory.mktemp("lease")
    env = _environment(PYTHON=python, TINY="1", WHEELS=str(root / "wheels"), LIMIT="400",
                       ARCHIVE_EVERY="1", PREFLIGHT="60", DATA=write_npz(root / "syn.npz",
                       n_train=40, n_test=8, size=32), COMPILE_CACHE=str(root / "xla"),
                       CACHE_DIR=str(root / "cache"), SHARED_DATA=str(root / "none"))  # fmt: skip
    done = subprocess.run(["bash", str(LEASE), "prepare"], cwd=root, env=env, capture_output=True,
                          text=True)  # fmt: skip
    assert done.returncode == 0, done.stderr[-2000:]
    assert {p.name.split("-")[0] for p in (root / "wheels").iterdir()} == {
        "keras",
        "namex",
        "optree",
    }
    return root, env


def _archived(archive):
    """The run records in a records archive (name -> record), or None while there is none."""
    if not archive.exists():
        return None
    with tarfile.open(archive) as tar:
        return {
            m.name: json.load(tar.extractfile(m))
            for m in tar.getmembers()
            if m.name.startswith("records/") and m.name.endswith(".json")
        }


def test_the_lease_script_cut_mid_study_keeps_its_records_and_a_second_call_finishes(lease):
    root, env = lease
    out, results = root / "out", root / "results"
    env = {**env, "OUT": str(out), "RESULTS": str(results)}
    call = subprocess.Popen(["bash", str(LEASE), "run"], cwd=root, env=env, start_new_session=True,
                            stdout=subprocess.PIPE, stderr=subprocess.STDOUT)  # fmt: skip
    deadline, kept = time.monotonic() + 400, None
    while time.monotonic() < deadline and call.poll() is None:
        kept = _archived(out / "records.tar.gz")
        if kept:
            break
        time.sleep(0.5)
    os.killpg(call.pid, signal.SIGTERM)  # what `timeout` sends at a call's limit
    log = call.communicate(timeout=60)[0].decode()
    assert kept and len(kept) < 4, log[-3000:]  # cut with runs still to train
    assert _archived(out / "records.tar.gz").keys() >= kept.keys()
    rows = [json.loads(line) for line in (out / "preflight.jsonl").read_text().splitlines()]
    assert {(r["grad_form"], r["epoch_form"]) for r in rows} == {
        ("per_run", "steps"),
        ("summed", "steps"),
    }
    assert all(r["compile_s"] > 0 and r["conv_kinds"] for r in rows), rows
    assert "devices:" in (out / "devices.txt").read_text()

    env["PREFLIGHT"] = "0"  # measured above: straight to the study
    again = subprocess.run(["bash", str(LEASE), "run"], cwd=root, env=env, capture_output=True,
                           text=True, timeout=600)  # fmt: skip
    assert again.returncode == 0, again.stdout[-3000:] + again.stderr[-3000:]
    final = _archived(out / "records.tar.gz")
    assert len(final) == 4  # cnn and the ablation, 2 runs each
    for name, record in kept.items():
        same = {k: v for k, v in record.items() if k not in TIMING_KEYS}
        assert {k: v for k, v in final[name].items() if k not in TIMING_KEYS} == same


def test_a_study_into_a_folder_of_other_settings_fails_saying_why(lease):
    root, env = lease
    results = root / "other"
    other = results / "settings" / "0123456789abcdef.json"
    other.parent.mkdir(parents=True)
    other.write_text(json.dumps({"comparable_settings": {"epochs": 99}}))
    record = results / "records" / "0123456789abcdef" / "cnn" / "run-0000.json"
    record.parent.mkdir(parents=True)
    record.write_text("{}")
    env = {**env, "OUT": str(root / "out-other"), "RESULTS": str(results)}
    done = subprocess.run(["bash", str(LEASE), "study"], cwd=root, env=env, capture_output=True,
                          text=True, timeout=300)  # fmt: skip
    assert done.returncode != 0
    assert "holds results of other settings" in done.stdout + done.stderr
    assert "study: failed" in done.stderr


# ---------------------------------------------------------------------- the wheel


def test_the_wheel_holds_the_package_its_command_and_licence(wheel):
    with zipfile.ZipFile(wheel) as archive:
        names = archive.namelist()
        info = wheel.name.split("-")[0] + "-" + wheel.name.split("-")[1] + ".dist-info"
        metadata = archive.read(f"{info}/METADATA").decode()
        entry_points = archive.read(f"{info}/entry_points.txt").decode()
        licence = archive.read(f"{info}/licenses/LICENSE").decode()
    assert {n.split("/")[0] for n in names} == {"keras_attn", info}  # no scripts/, tests/
    assert "keras_attn/cli/__init__.py" in names and "keras_attn/__main__.py" in names
    assert "keras-attn = keras_attn.cli:main" in entry_points
    assert licence == (REPO / "LICENSE").read_text() and "Apache License" in licence
    assert "License-Expression: Apache-2.0" in metadata
    assert "Description-Content-Type: text/markdown" in metadata


def test_the_environment_has_no_tensorflow_and_keras_attn_from_the_wheel(jax_env, tmp_path):
    python, names, _ = jax_env
    assert not {"tensorflow", "tensorflow-cpu", "keras-tuner", "tensorflow-datasets"} & names
    assert {"keras", "jax", "numpy", "pillow", "keras-attn"} <= names
    code = "import keras_attn, importlib.metadata as m; print(keras_attn.__file__); "
    code += "print(m.distribution('keras_attn').read_text('direct_url.json'))"
    done = _run(python, ["-c", code], cwd=tmp_path)
    assert done.returncode == 0, done.stderr[-2000:]
    where, direct_url = done.stdout.strip().splitlines()
    venv = Path(python).parents[1]
    assert Path(where).is_relative_to(venv) and "site-packages" in where
    assert '"editable": true' not in direct_url and str(REPO) not in direct_url


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


def test_from_an_empty_folder_the_command_runs_the_protocol_its_report_export_and_predict(
    jax_env, tmp_path
):
    """The install path as a new user takes it: the wheel's ``keras-attn``, an empty
    folder, mock data made there, no KERAS_BACKEND (``--backend jax`` picks it). A
    two-block ``cnn`` (``--override``): the full one spends minutes in XLA on a CPU."""
    python, _, setup_seconds = jax_env
    work = tmp_path / "work"
    work.mkdir()
    write_npz(work / "mock.npz", n_train=80, n_test=16)
    t0 = time.monotonic()
    done = _run(
        python,
        [
            "keras-attn",
            "protocol",
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
            "--group-size",
            "2",
            "--data-dir",
            "mock.npz",
            "--val-size",
            "16",
            "--out",
            "out",
            "--no-report",
            "--override",
            "blocks=[4,8]",
            "--override",
            "dense_units=8",
        ],  # fmt: skip
        cwd=work,
        backend=None,
    )
    assert done.returncode == 0, done.stderr[-3000:]
    records = sorted((work / "out" / "records").glob("*/cnn/run-*.json"))
    assert len(records) == 2
    rec = json.loads(records[0].read_text())
    assert rec["environment"]["backend"] == "jax" and rec["training"]["group"] == [0, 1]
    assert rec["training"]["trainer"] == "jax"  # the JAX trainer is the default on JAX
    done = _run(python, ["keras-attn", "report", "out", "--no-plot"], cwd=work)
    assert done.returncode == 0, done.stderr[-3000:]
    assert (work / "out" / "report.md").exists() and "| `cnn` | 2/2 |" in done.stdout
    print(f"JAX-only env: set up in {setup_seconds:.0f}s, protocol {time.monotonic() - t0:.0f}s")
    done = _run(python, ["-m", "keras_attn", "--help"], cwd=work, backend=None)
    assert done.returncode == 0, done.stderr[-2000:]
    assert done.stdout.startswith("usage: python -m keras_attn ")
    assert all(c in done.stdout for c in ("protocol", "report", "attention-maps", "benchmark"))

    # The best run exports as .keras on JAX; each TensorFlow format says in one line what
    # it needs; the export classifies an image there.
    export = ["keras-attn", "export", "out", "--model", "cnn"]
    done = _run(python, [*export, "--out-root", "saved"], cwd=work)
    assert done.returncode == 0, done.stderr[-3000:]
    err = done.stderr.strip().splitlines()
    assert err[0].startswith("note: TensorFlow is not installed: running on jax"), err
    for line, fmt in zip(err[1:], ("saved_model", "onnx", "tflite")):
        assert line.startswith(f"skipping {fmt}: the ") and "pip install tensorflow" in line
    assert sorted(p.name for p in (work / "saved" / "cnn").iterdir()) == [
        "model.json",
        "model.keras",
    ]
    for fmt in ("saved_model", "onnx", "tflite"):
        done = _run(python, [*export, "--formats", f"keras,{fmt}"], cwd=work)
        assert done.returncode == 2 and "Traceback" not in done.stderr, done.stderr[-2000:]
        last = done.stderr.strip().splitlines()[-1]
        assert last.startswith("error: the ") and "pip install tensorflow" in last, last
    Image.fromarray(np.full((40, 48, 3), 128, np.uint8)).save(work / "cat.png")
    done = _run(python, ["keras-attn", "predict", "saved/cnn", "cat.png"], cwd=work)
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


def test_the_command_names_the_missing_package(jax_env, tmp_path):
    python, _, _ = jax_env
    done = _run(
        python,
        [
            "keras-attn",
            "protocol",
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
    done = _run(python, ["keras-attn", "benchmark", *args], cwd=tmp_path)
    assert done.returncode == 0, done.stderr[-3000:]
    result = json.loads(out.read_text())
    assert [r["model"] for r in result["results"]] == ["cnn"]
    assert result["environment"]["backend"] == "jax"
    assert result["results"][0]["jit_compile"] is True  # JAX's fast path
