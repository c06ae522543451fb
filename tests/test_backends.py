"""Backend independence, tested: the backend-neutral tests run again under JAX and PyTorch.

Each backend runs in its own process, since Keras picks its backend at import: one
process per backend runs every test listed in `BACKEND_TESTS` (one start-up, one set of
imports and compiled initializers instead of one per file). JAX and PyTorch are dev
dependencies (a backend that is not installed is skipped, saying so). Under PyTorch: every
variant builds with its exact count, the layer checks (`layer_checks.run_layer_test`, a
training step each), the zoo's training step and ``.keras`` round trip, the protocol's command.
"""

import importlib.util
import os
import pathlib
import re
import subprocess
import sys

import pytest

TESTS = pathlib.Path(__file__).resolve().parent
# Test files or node ids (relative to tests/) rerun under each backend.
BACKEND_TESTS = {
    "jax": [
        "test_layers.py",
        "test_zoo.py",
        # compiled (jit) and eager steps agree
        "test_benchmark.py::test_fast_path_matches_eager_step",
        # the JAX trainer: fit's steps in every form, records alone, masks on the device,
        # SIGKILL resume, out-of-memory split
        "test_jax_trainer.py",
        # Grad-CAM takes the backend's own gradient
        "test_gradcam.py::test_the_map_follows_the_class_asked_for",
        "test_gradcam.py::test_grayscale_input_and_another_size",
        # the ResNets' option A shortcut and a gate inserted into a model
        "test_resnet.py::test_forward_backward_and_save_load",
        "test_insert_attention.py::test_several_gates_a_callable_a_sequential_and_a_shared_layer",
    ],
    "torch": [
        "test_layers.py",
        "test_zoo.py",
        "test_resnet.py::test_forward_backward_and_save_load",
        "test_insert_attention.py::test_several_gates_a_callable_a_sequential_and_a_shared_layer",
        # the protocol's command, last: it turns deterministic algorithms on for the process
        "test_protocol.py::test_the_command_runs_on_the_backend_keras_has",
    ],
}


def _summary_counts(stdout):
    """{'passed': n, 'skipped': m, ...} from pytest's last summary line."""
    lines = [line for line in stdout.strip().splitlines() if line.strip()]
    last = lines[-1] if lines else ""
    return {word: int(n) for n, word in re.findall(r"(\d+) (\w+)", last)}


@pytest.mark.slow
@pytest.mark.parametrize("backend", sorted(BACKEND_TESTS))
def test_backend_neutral_tests_under_backend(backend):
    if importlib.util.find_spec(backend) is None:
        pytest.skip(f"{backend} is not installed (pip install {backend})")
    env = {**os.environ, "KERAS_BACKEND": backend}
    env = {k: v for k, v in env.items() if not k.startswith("PYTEST_XDIST")}
    cmd = [sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", "-rfEs"]
    # This repository's addopts (pyproject.toml) may spread tests over worker processes;
    # this run is one process of its own.
    cmd += ["-o", "addopts=--strict-markers"]
    cmd += [str(TESTS / t) for t in BACKEND_TESTS[backend]]
    result = subprocess.run(cmd, env=env, capture_output=True, text=True, timeout=1500)
    tail = result.stdout[-6000:] + result.stderr[-2000:]
    assert result.returncode == 0, f"{backend} backend:\n{tail}"
    counts = _summary_counts(result.stdout)
    # A listed node id that no longer exists is an error (exit code 4) above. Tests may
    # skip themselves on a backend (with a reason, listed by -rs in the tail).
    assert counts.get("passed", 0) > 0, f"{backend}: {tail}"
    assert not counts.keys() & {"failed", "error", "errors", "xpassed"}, f"{backend}: {tail}"
