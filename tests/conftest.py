"""Shared test fixtures: seeding, quiet TensorFlow, the offline CIFAR-10 copy.

Tests that read real CIFAR-10 images find them through the environment variable
``KERAS_ATTN_CIFAR10``: the path of the JPEG copy's ``.tar.gz`` (or of an unpacked
image folder ``train/<class>/*.jpg``, ``test/<class>/*.jpg``). Without it they skip.
"""

import os
import sys

# The test command installs with `pip install --no-compile`, leaving byte-compiling to each
# module's first import, and the suite starts about 60 Python processes, most importing
# TensorFlow. Where PYTHONDONTWRITEBYTECODE is set (this project's machines set it), no
# process would keep what it compiled: each compiled TensorFlow, Keras, JAX and PyTorch
# from source again (docs/development.md). The suite's processes write the cache.
os.environ.pop("PYTHONDONTWRITEBYTECODE", None)
sys.dont_write_bytecode = False

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
# One inter-op thread, as `keras_attn.runtime.configure_runtime` sets in a fresh process.
# Tests compare runs bit for bit, and only the first module to start TensorFlow in a
# worker could set it (thread pools are fixed from then on).
os.environ.setdefault("TF_NUM_INTEROP_THREADS", "1")
# XLA's CPU optimisation passes dominate the tests' compile time (JAX compiles every
# weight initializer; several tests compare compiled steps): skip them. Results are the
# same computation, and subprocesses inherit this. Not for benchmarks.
os.environ.setdefault("XLA_FLAGS", "--xla_backend_optimization_level=0")
# XLA's newer CPU fusion emitters take about twice as long to compile; the classic ones
# compute the same operations. The flag is used where both installed XLAs (JAX's and
# TensorFlow's) know it, since an unknown flag in XLA_FLAGS aborts the process: probed
# once in pytest's first process (about 6 s); workers and test subprocesses inherit it
# (docs/development.md, "XLA").
FAST_COMPILE_FLAG = "--xla_cpu_use_fusion_emitters=false"
_PROBES = {
    "jax": "import jax; jax.jit(lambda x: x + 1)(1)",
    "tensorflow": "import tensorflow as tf; tf.function(lambda x: x + 1, jit_compile=True)(1.0)",
}


def _probe_fast_compile():
    import importlib.util
    import subprocess

    flags = os.environ["XLA_FLAGS"]
    if FAST_COMPILE_FLAG in flags or os.environ.get("PYTEST_XDIST_WORKER"):
        return
    code = "\n".join(c for name, c in _PROBES.items() if importlib.util.find_spec(name))
    if not code:
        return
    trial = {**os.environ, "XLA_FLAGS": f"{flags} {FAST_COMPILE_FLAG}"}
    probe = subprocess.run([sys.executable, "-c", code], env=trial, capture_output=True)
    if probe.returncode == 0:
        os.environ["XLA_FLAGS"] = trial["XLA_FLAGS"]


_probe_fast_compile()

import gc  # noqa: E402
import pathlib  # noqa: E402
import tarfile  # noqa: E402

import keras  # noqa: E402
import pytest  # noqa: E402

REPO = pathlib.Path(__file__).resolve().parents[1]
#: The offline CIFAR-10 copy (an archive or a folder), from the environment.
CIFAR10 = os.environ.get("KERAS_ATTN_CIFAR10")


@pytest.fixture(scope="session", autouse=True)
def _temporary_files_under_basetemp(tmp_path_factory):
    """`tempfile`'s folders go under pytest's temporary folder, which pytest prunes.

    The docstring examples write to ``tempfile.mkdtemp()``, and TensorFlow Datasets
    makes its own under ``tfds.testing.mock_data``: about 60 folders a run would
    otherwise stay in the system's temporary folder.
    """
    import tempfile

    before = tempfile.tempdir
    tempfile.tempdir = str(tmp_path_factory.mktemp("tempfile"))
    yield
    tempfile.tempdir = before


@pytest.fixture(autouse=True)
def _seed():
    """Every test starts from the same random state."""
    keras.utils.set_random_seed(1234)


@pytest.fixture(scope="module", autouse=True)
def _op_determinism_off():
    """Each test module starts and ends with TensorFlow's op determinism off.

    `keras_attn.runtime.configure_runtime` turns it on for the whole process, and from
    then on Keras quietly compiles ``jit_compile=True`` models without XLA. Whatever
    modules ran before in this process (pytest-xdist's workers each run some of them),
    a module sees the state a fresh process has.
    """
    config = _tf_config()
    if config is not None and config.is_op_determinism_enabled():
        config.disable_op_determinism()
    yield
    if config is not None and config.is_op_determinism_enabled():
        config.disable_op_determinism()


def _tf_config():
    if keras.backend.backend() != "tensorflow":
        return None
    from tensorflow.python.framework import config

    return config if hasattr(config, "disable_op_determinism") else None


# The most images per class any test copies out of the real CIFAR-10 copy
# (data_helpers.copy_cifar_subset): only these are unpacked.
CIFAR_SUBSET = {"train": 12, "test": 6}


def _copy_cifar_subset(source, root):
    """The first `CIFAR_SUBSET` images (by name) of each class of an unpacked folder."""
    import shutil

    for split, n in CIFAR_SUBSET.items():
        for cls in sorted(p for p in (source / split).iterdir() if p.is_dir()):
            (root / split / cls.name).mkdir(parents=True)
            for f in sorted(cls.glob("*.jpg"))[:n]:
                shutil.copyfile(f, root / split / cls.name / f.name)


def _extract_cifar_subset(archive, root):
    """The first `CIFAR_SUBSET` images (by name) of each class, with tarfile's "data" filter."""
    with tarfile.open(archive) as tar:
        names = {}  # (split, class) -> image names
        for member in tar:
            parts = member.name.split("/")
            plain = len(parts) == 3 and all(x not in ("", ".", "..") for x in parts)
            if member.isfile() and plain and parts[0] in CIFAR_SUBSET:
                names.setdefault((parts[0], parts[1]), []).append(member.name)
        wanted = {n for (split, _), ns in names.items() for n in sorted(ns)[: CIFAR_SUBSET[split]]}
        members = [m for m in tar.getmembers() if m.name in wanted]
        safe = {"filter": "data"} if hasattr(tarfile, "data_filter") else {}  # Python < 3.10.12
        tar.extractall(root, members=members, **safe)


def import_or_skip(module):
    """The imported keras_attn module, or a skip where it needs what is not installed
    (``keras_attn.tuning`` without KerasTuner says "keras_attn.tuning needs ...")."""
    import importlib

    try:
        return importlib.import_module(module)
    except ImportError as error:
        if str(error).startswith(f"{module} needs"):
            pytest.skip(str(error))
        raise


@pytest.fixture(scope="session")
def cifar_folder(tmp_path_factory):
    """The first images (by name) of each class of the shared CIFAR-10 JPEG copy, unpacked
    once per session as ``train/<class>/``, ``test/<class>/`` (`CIFAR_SUBSET` per class).

    Unpacking all 60,000 files takes minutes on a busy 2-core machine and the tests read
    a few dozen, so only those are written (with tarfile's ``"data"`` filter, as
    `keras_attn.data.extract_archive` does). Skips cleanly without ``KERAS_ATTN_CIFAR10``.
    """
    if not CIFAR10:
        pytest.skip("set KERAS_ATTN_CIFAR10 to the CIFAR-10 JPEG copy to run this test")
    source = pathlib.Path(CIFAR10).expanduser()
    if not source.exists():
        pytest.skip(f"KERAS_ATTN_CIFAR10={CIFAR10} does not exist")
    root = tmp_path_factory.mktemp("cifar10-jpeg")
    # Listing the archive makes 60,000 objects: with the garbage collector on, a process
    # that already holds many (models, graphs) spends seconds collecting, not reading.
    collecting = gc.isenabled()
    gc.disable()
    try:
        if source.is_dir():
            _copy_cifar_subset(source, root)
        else:
            _extract_cifar_subset(source, root)
    finally:
        if collecting:
            gc.enable()
    for split, n in CIFAR_SUBSET.items():
        classes = (
            sorted(p.name for p in (root / split).iterdir()) if (root / split).is_dir() else []
        )
        counts = [len(list((root / split / c).glob("*.jpg"))) for c in classes]
        if len(classes) != 10 or counts != [n] * 10:
            pytest.fail(
                f"{CIFAR10}: expected 10 classes of {n} images in {split}/, got "
                f"{dict(zip(classes, counts))}"
            )
    return root
