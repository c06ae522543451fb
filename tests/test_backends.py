"""Backend independence, tested: the layer and zoo tests run again under JAX and PyTorch.

Each backend runs in its own process, since Keras picks its backend at import.
JAX is a test dependency; PyTorch runs where it is installed (``pip install torch``)
and is skipped otherwise.
"""

import importlib.util
import os
import pathlib
import subprocess
import sys

import pytest

TESTS = pathlib.Path(__file__).resolve().parent


@pytest.mark.slow
@pytest.mark.parametrize("backend", ["jax", "torch"])
def test_layers_and_zoo_under_backend(backend):
    if importlib.util.find_spec(backend) is None:
        pytest.skip(f"{backend} is not installed (pip install {backend})")
    env = {**os.environ, "KERAS_BACKEND": backend}
    cmd = [
        sys.executable,
        "-m",
        "pytest",
        "-q",
        "-p",
        "no:cacheprovider",
        str(TESTS / "test_layers.py"),
        str(TESTS / "test_zoo.py"),
    ]
    result = subprocess.run(cmd, env=env, capture_output=True, text=True, timeout=1200)
    tail = result.stdout[-4000:] + result.stderr[-2000:]
    assert result.returncode == 0, f"{backend} backend:\n{tail}"
    assert " passed" in result.stdout and " failed" not in result.stdout, tail
