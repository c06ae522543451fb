"""Shared test fixtures: seeding, quiet TensorFlow, the offline CIFAR-10 copy."""

import os

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
# XLA's CPU optimisation passes dominate the tests' compile time (JAX compiles every
# weight initializer; several tests compare compiled steps): skip them. Results are the
# same computation, and subprocesses inherit this. Not for benchmarks.
os.environ.setdefault("XLA_FLAGS", "--xla_backend_optimization_level=0")

import pathlib  # noqa: E402

import keras  # noqa: E402
import pytest  # noqa: E402

REPO = pathlib.Path(__file__).resolve().parents[1]
SHARED_DATA = REPO.parent / "shared" / "data" / "cifar10-jpeg.tar.gz"
DATA_CACHE = REPO / ".data"  # git-ignored


@pytest.fixture(autouse=True)
def _seed():
    """Every test starts from the same random state."""
    keras.utils.set_random_seed(1234)


@pytest.fixture(scope="session")
def cifar_folder():
    """The shared CIFAR-10 JPEG copy unpacked (once) as ``train/<class>/``, ``test/<class>/``.

    Skips cleanly where the archive is absent (a user's clone does not have it).
    """
    if not SHARED_DATA.exists():
        pytest.skip(f"offline CIFAR-10 copy not found at {SHARED_DATA}")
    from keras_attn.data import extract_archive

    # The same folder and marker as the smoke preset, so the archive is unpacked once.
    root = extract_archive(SHARED_DATA, DATA_CACHE / "cifar10-jpeg")
    if not ((root / "train").is_dir() and (root / "test").is_dir()):
        pytest.fail(f"{SHARED_DATA} did not unpack to train/ and test/ folders under {root}")
    return root
