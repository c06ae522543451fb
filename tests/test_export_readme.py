"""saved_models/README.md runs: its Python blocks on a small export, its command lines through
keras-attn's own parsers (the predict lines are run).

What the README assumes is set up first, in a scratch folder: a model saved as
``my_model.keras`` and an image ``cat.png``. The blocks that import keras_attn run here,
in README order (the first one writes the export); the others, which need only a format's
runtime, run in a fresh process that never imports keras_attn. Every block that leaves
``probs`` behind must match the Keras model.
"""

import contextlib
import io
import json
import os
import re
import shlex
import subprocess
import sys
import textwrap

import keras
import numpy as np
import pytest
from export_helpers import REPO, TOL, load_script, reference_predictions, small_model, uint8_images
from PIL import Image

from keras_attn import export
from keras_attn.export.formats import FORMATS

README = REPO / "saved_models" / "README.md"
pytestmark = pytest.mark.skipif(
    keras.backend.backend() != "tensorflow" or export.available_formats() != FORMATS,
    reason="the README exports every format: needs the TF backend and the export packages",
)

# Runs each block in a fresh namespace; prints, per block, the largest difference of its
# `probs` (if any) to the expected probabilities.
RUNNER = textwrap.dedent(
    """
    import json, sys
    import numpy as np
    blocks, expected = json.loads(sys.argv[1]), np.load(sys.argv[2])
    diffs = []
    for i, block in enumerate(blocks):
        namespace = {}
        exec(compile(block, f"README python block {i}", "exec"), namespace)
        probs = namespace.get("probs")
        diffs.append(None if probs is None else float(np.abs(np.asarray(probs) - expected).max()))
    assert "keras_attn" not in sys.modules, "a standalone block imported keras_attn"
    print(json.dumps(diffs))
    """
)


def _blocks(kind):
    return re.findall(rf"```{kind}\n(.*?)```", README.read_text(), re.S)


def _command_lines():
    lines = []
    for block in _blocks("sh"):
        for line in block.splitlines():
            command = line.split("  #")[0].strip()
            if command:
                lines.append(shlex.split(command))
    return lines


@pytest.fixture(scope="module")
def readme_dir(tmp_path_factory):
    """A folder set up as the README assumes, after its keras_attn blocks ran there (in order:
    the first writes saved_models/my_model). Returns the folder, the expected probabilities of
    two black images, the keras_attn blocks' `probs` and what they printed."""
    folder = tmp_path_factory.mktemp("readme")
    keras.utils.set_random_seed(0)
    model = small_model("cnn", blocks=[4, 8], dense_units=8)
    model.save(folder / "my_model.keras")
    Image.fromarray(uint8_images((48, 40, 3), n=1)[0]).save(folder / "cat.png")
    expected = reference_predictions(model, np.zeros((2, 32, 32, 3), np.uint8))
    probs, printed = [], io.StringIO()
    cwd = os.getcwd()
    os.chdir(folder)
    try:
        with contextlib.redirect_stdout(printed):
            for i, block in enumerate(b for b in _blocks("python") if "keras_attn" in b):
                namespace = {}
                exec(compile(block, f"README python block {i}", "exec"), namespace)
                probs.append(namespace.get("probs"))
    finally:
        os.chdir(cwd)
    return folder, expected, probs, printed.getvalue()


def test_readme_blocks_with_keras_attn_export_and_load(readme_dir):
    blocks = _blocks("python")
    assert len(blocks) >= 6 and "export_model(" in blocks[0], "the README lost its examples"
    folder, expected, probs, printed = readme_dir
    card = export.load_card(folder / "saved_models" / "my_model")
    assert card["class_names"][3] == "cat" and set(card["files"]) == set(FORMATS)
    assert all(d <= TOL for d in card["verified_max_abs_diff"].values())
    assert "'saved_model': " in printed and "[[('" in printed  # the card's diffs, then top-k
    keras_probs = [p for p in probs if p is not None and len(p) == 2]
    assert keras_probs, "no keras_attn block computed probs of the two black images"
    for p in keras_probs:
        np.testing.assert_allclose(p, expected, atol=TOL, rtol=0)


def test_readme_blocks_without_keras_attn_load_each_format(readme_dir):
    folder, expected, _, _ = readme_dir
    standalone = [b for b in _blocks("python") if "keras_attn" not in b]
    imported = {m for b in standalone for m in re.findall(r"^(?:from|import) (\w+)", b, re.M)}
    assert {"tensorflow", "onnxruntime", "ai_edge_litert", "keras"} <= imported
    np.save(folder / "expected.npy", expected)
    env = {**os.environ, "TF_CPP_MIN_LOG_LEVEL": "3", "KERAS_BACKEND": "tensorflow"}
    done = subprocess.run(
        [sys.executable, "-c", RUNNER, json.dumps(standalone), str(folder / "expected.npy")],
        capture_output=True,
        text=True,
        cwd=folder,
        env=env,
        timeout=600,
    )
    assert done.returncode == 0, done.stderr[-3000:]
    diffs = json.loads(done.stdout.strip().splitlines()[-1])
    assert len(diffs) == len(standalone) and None not in diffs, diffs
    assert all(d <= TOL for d in diffs), diffs
    names = export.load_card(folder / "saved_models" / "my_model")["class_names"]
    assert done.stdout.splitlines()[0] in names  # what the ONNX block prints: the top class


def test_readme_command_lines_use_real_flags_and_predict_runs(readme_dir, monkeypatch, capsys):
    lines = _command_lines()
    assert {line[1] for line in lines} == {"export", "predict", "attention-maps"}
    for program, command, *argv in lines:
        assert program == "keras-attn"
        parser = load_script(command.replace("-", "_"), monkeypatch).build_parser()
        parser.parse_args(argv)  # exits (SystemExit) on an unknown flag
    monkeypatch.chdir(readme_dir[0])
    predict_script = load_script("predict", monkeypatch)
    for _, command, *argv in lines:
        if command == "predict":
            assert predict_script.main(argv) == 0, capsys.readouterr().err
    out = capsys.readouterr().out
    assert "cat.png  (center-cropped and resized to 32x32)" in out and '"top_k"' in out
