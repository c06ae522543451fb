"""The README's commands, run as a new user runs them.

The first set-up command runs to its end with ``tfds.testing.mock_data`` standing in for
the CIFAR-10 download, and small size flags appended (a later flag wins), so the test
takes seconds instead of minutes; the offline path of the same command gives its one-line
error within seconds; the five-minute tour then runs on that command's output.
"""

import contextlib
import io
import os
import re
import shlex
import socket
import time

import numpy as np
import pytest
from data_helpers import REPO

from keras_attn import cli

tfds = pytest.importorskip("tensorflow_datasets")

README = (REPO / "README.md").read_text()
#: Appended to the README's commands: same code path, tiny sizes.
SMALL = "--runs 1 --epochs 1 --val-size 64 --train-limit 128 --val-limit 64 --test-limit 64"
MOCK_EXAMPLES = 200  # per split


def _blocks(language):
    return re.findall(rf"```{language}\n(.*?)```", README, re.S)


def _commands(block):
    """The shell commands of a block: one per line, comments dropped, `&&` split."""
    out = []
    for line in block.splitlines():
        line = line.split("  #")[0].strip()
        if line and not line.startswith("#"):
            out += [c.strip() for c in line.split("&&")]
    return out


def _run(command, extra=""):
    """Run ``keras-attn ARGS`` in this process; return (exit code, stdout, stderr)."""
    tokens = shlex.split(command) + shlex.split(extra)
    assert tokens[:1] == ["keras-attn"] and tokens[1] in cli.COMMANDS, command
    out, err = io.StringIO(), io.StringIO()
    with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
        try:
            code = cli.main(tokens[1:])
        except SystemExit as e:
            code = e.code
    return code or 0, out.getvalue(), err.getvalue()


FIRST = _commands(_blocks("bash")[0])


def test_first_command_installs_then_runs_the_smoke_protocol():
    assert FIRST[:3] == ["python3 -m venv .venv", ". .venv/bin/activate", 'pip install -e ".[cpu]"']
    assert FIRST[3].startswith("keras-attn protocol --preset smoke")


def test_test_command_is_what_ci_runs():
    ci = (REPO / ".ci" / "run").read_text().strip().splitlines()[-1]
    assert _blocks("bash")[1].strip() in ci


def test_readme_lists_every_subcommand():
    listed = re.search(r"Its subcommands \(`keras-attn --help`\): (.*?)\.\n", README, re.S)
    assert re.findall(r"`([a-z-]+)`", listed.group(1)) == list(cli.COMMANDS)


def test_readme_says_where_the_tours_search_reads_its_data():
    text = " ".join(README.split())
    assert "`keras-attn tune --preset smoke` reads the same data as the protocol" in text
    assert "`keras-attn tune --preset smoke --data-dir PATH`" in text


@pytest.fixture(scope="module")
def tour(tmp_path_factory):
    """A fresh folder where the README's first command has run (mock CIFAR-10)."""
    folder = tmp_path_factory.mktemp("tour")
    cwd = os.getcwd()
    os.chdir(folder)
    try:
        with tfds.testing.mock_data(num_examples=MOCK_EXAMPLES):
            result = _run(FIRST[3], SMALL)
    finally:
        os.chdir(cwd)
    return folder, result


def test_first_command_runs_to_its_end(tour):
    folder, (code, out, err) = tour
    assert code == 0, err[-3000:]
    records = sorted((folder / "results" / "smoke" / "records").rglob("*.json"))
    assert {p.parent.name for p in records} == {"cnn", "cnn_eca", "cnn_conv_ae"}
    assert (folder / "results" / "smoke" / "report.md").exists()


def test_first_command_offline_fails_in_one_line_within_seconds(tmp_path, monkeypatch):
    def no_network(*args, **kwargs):
        raise OSError("Network is unreachable")

    monkeypatch.setattr(socket, "create_connection", no_network)
    monkeypatch.chdir(tmp_path)
    t0 = time.monotonic()
    code, out, err = _run(FIRST[3], f"--tfds-dir {tmp_path / 'tfds'}")
    assert time.monotonic() - t0 < 30
    assert code not in (0, None)
    lines = err.strip().splitlines()
    assert len(lines) == 1 and "no network" in lines[0] and "--data-dir" in lines[0], err
    assert not (tmp_path / "tfds" / "cifar10").exists()
    assert not (tmp_path / "results").exists() or not list((tmp_path / "results").rglob("*.json"))


def test_tour_python_block_runs():
    namespace = {}
    exec(compile(_blocks("python")[0], "README.md", "exec"), namespace)  # noqa: S102
    assert namespace["model"].name == "cnn_conv_ae_eca"
    assert namespace["small"].input_shape == (None, 28, 28, 1)


def test_tour_commands_run_on_the_first_commands_output(tour):
    folder, (code, _, err) = tour
    assert code == 0, err[-3000:]
    from PIL import Image

    Image.fromarray(np.random.default_rng(0).integers(0, 255, (40, 48, 3), np.uint8)).save(
        folder / "your_image.jpg"
    )
    commands = [c for c in _commands(_blocks("bash")[2]) if c.startswith("keras-attn")]
    assert [shlex.split(c)[1] for c in commands] == ["tune", "export", "predict", "attention-maps"]
    small = {"tune": "--max-trials 1 --val-size 64 --train-limit 128 --val-limit 64"}
    cwd = os.getcwd()
    os.chdir(folder)
    try:
        with tfds.testing.mock_data(num_examples=MOCK_EXAMPLES):
            for command in commands:
                code, out, err = _run(command, small.get(shlex.split(command)[1], ""))
                assert code == 0, f"{command}\n{out[-2000:]}\n{err[-3000:]}"
    finally:
        os.chdir(cwd)
    assert (folder / "where.png").stat().st_size > 1000
