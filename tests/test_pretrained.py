"""`keras-attn publish` and `keras_attn.load_pretrained`: a tiny protocol folder of three runs
published (best and median run), its card and metadata checked against the report's figures,
loaded back from a folder, from http://127.0.0.1 (a server in a thread), from hf:// through
Keras' own Hub loader, and in a fresh process without the results folder; bad hashes,
missing files and another package's config each get one line."""

import http.server
import json
import os
import shutil
import subprocess
import sys
import textwrap
import threading

import keras
import numpy as np
import pytest

import keras_attn
from keras_attn.pretrained import load_pretrained, publish
from keras_attn.pretrained.folder import sha256_of
from keras_attn.report import load_records, summarize

SMALL = {"blocks": [4, 8], "dense_units": 8, "input_shape": (16, 16, 3), "num_classes": 3}
CLASSES = ["cat", "dog", "owl"]
#: (run, best validation accuracy, test accuracy): run 1 is the best, run 2 the median.
RUNS = [(0, 0.60, 0.55), (1, 0.70, 0.50), (2, 0.65, 0.52)]


def _numpy(x):
    return keras.ops.convert_to_numpy(x)


def _images(n=3, seed=0):
    return np.random.default_rng(seed).integers(0, 256, (n, 16, 16, 3)).astype("float32")


@pytest.fixture(scope="module")
def results(tmp_path_factory):
    """A protocol folder with three finished runs of a small cnn_eca, as the protocol writes it."""
    root = tmp_path_factory.mktemp("results")
    outputs = {}
    for run, val, test in RUNS:
        keras.utils.set_random_seed(run)
        model = keras_attn.build("cnn_eca", **SMALL)
        rel = f"weights/s1/cnn_eca/run-{run:04d}.weights.h5"
        (root / rel).parent.mkdir(parents=True, exist_ok=True)
        model.save_weights(root / rel)
        outputs[run] = _numpy(model(_images(), training=False))
        record = {
            "settings_id": "s1",
            "model": "cnn_eca",
            "run": run,
            "seed": run,
            "best_val_accuracy": val,
            "test_accuracy": test,
            "weights": rel,
            "model_config": model.model_config,
            "preprocessing": "none: uint8 pixels cast to float32, 0..255",
            "data": {"fingerprint": "f1ab", "class_names": CLASSES, "source": {"name": "pets"}},
        }
        path = root / "records" / "s1" / "cnn_eca" / f"run-{run:04d}.json"
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(json.dumps(record))
    return root, outputs


@pytest.fixture(scope="module")
def published(results, tmp_path_factory):
    root, outputs = results
    out = tmp_path_factory.mktemp("shared") / "cnn_eca"
    return publish(root, "cnn_eca", out, dataset="cifar10"), out, outputs


def test_publish_writes_keras_files_provenance_and_a_card(published, results):
    meta, out, _ = published
    assert sorted(os.listdir(out)) == [
        "README.md",
        "config.json",
        "metadata.json",
        "model.weights.h5",
    ]
    assert (meta["run"], meta["chosen_by"]) == (
        1,
        "the highest validation accuracy of the variant's runs",
    )
    assert meta["test_accuracy"] == 0.50 and meta["best_val_accuracy"] == 0.70
    assert meta["settings_id"] == "s1" and meta["data_fingerprint"] == "f1ab"
    assert meta["class_names"] == CLASSES and meta["gates"] == ["eca"]
    assert meta["weights_sha256"] == sha256_of(out / "model.weights.h5")
    # The variant's figures are the report's.
    row = next(r for r in summarize(load_records(results[0])) if r["model"] == "cnn_eca")
    assert meta["variant"] == {
        "n": 3,
        "runs": 3,
        "mean": pytest.approx(row["mean"]),
        "std": pytest.approx(row["std"]),
        "ci95": [pytest.approx(row["ci95_low"]), pytest.approx(row["ci95_high"])],
    }
    stored = json.loads((out / "metadata.json").read_text())
    assert stored["keras_attn"] == json.loads(json.dumps(meta)) and "keras_version" in stored
    card = (out / "README.md").read_text()
    front = card.split("---\n")[1]
    for line in ("library_name: keras", '- "keras_attn"', '- "eca"', '- "cifar10"', "- accuracy"):
        assert line in front.splitlines(), line
    assert "      value: 0.5" in front
    assert f"{100 * row['mean']:.2f} %" in card and "| this run's test accuracy | 50.00 % |" in card


def test_published_model_loads_with_the_runs_outputs(published):
    meta, out, outputs = published
    model = load_pretrained(out)
    np.testing.assert_allclose(_numpy(model(_images(), training=False)), outputs[1], atol=1e-6)
    again = keras_attn.build("cnn_eca", weights=out, **SMALL)
    np.testing.assert_allclose(_numpy(again(_images(), training=False)), outputs[1], atol=1e-6)
    with pytest.raises(ValueError, match=r"config differs .* in: blocks"):
        keras_attn.build("cnn_eca", weights=out, **{**SMALL, "blocks": [4, 4]})
    plain = keras.saving.load_model(out)  # Keras reads the folder itself
    np.testing.assert_allclose(_numpy(plain(_images(), training=False)), outputs[1], atol=1e-6)


def test_median_run_and_the_command_line(results, tmp_path, capsys):
    from keras_attn.cli import main

    root, outputs = results
    out = tmp_path / "median"
    assert (
        main(["publish", str(root), "--model", "cnn_eca", "--run", "median", "--out", str(out)])
        == 0
    )
    printed = capsys.readouterr().out
    assert "published cnn_eca run 2 (seed 2; chosen for the median test accuracy" in printed
    assert "over 3 runs" in printed and f"load_pretrained({str(out)!r})" in printed
    model = load_pretrained(out)
    np.testing.assert_allclose(_numpy(model(_images(), training=False)), outputs[2], atol=1e-6)
    assert json.loads((out / "metadata.json").read_text())["keras_attn"]["dataset"] == "pets"
    argv = ["publish", str(root), "--model", "cnn_eca", "--out", str(out)]
    assert main(argv) == 2 and "already exists" in capsys.readouterr().err
    assert main(["publish", str(root), "--model", "cnn_cbam"]) == 2
    assert "No records of model 'cnn_cbam'" in capsys.readouterr().err


def test_bad_folders_get_one_line(published, tmp_path):
    _, out, _ = published
    with pytest.raises(ValueError, match="No such folder"):
        load_pretrained(tmp_path / "nothing")
    broken = tmp_path / "broken"
    shutil.copytree(out, broken)
    (broken / "model.weights.h5").unlink()
    with pytest.raises(ValueError, match=r"has no model.weights.h5: a published model folder"):
        load_pretrained(broken)
    shutil.copy(out / "model.weights.h5", broken / "model.weights.h5")
    with pytest.raises(ValueError, match=r"SHA-256 [0-9a-f]{64}, but the expected one is 00ff"):
        load_pretrained(broken, sha256="00ff")
    with open(broken / "model.weights.h5", "ab") as f:
        f.write(b"x")
    with pytest.raises(ValueError, match="but the recorded one is"):
        load_pretrained(broken)
    foreign = tmp_path / "foreign"
    shutil.copytree(out, foreign)
    config = json.loads((foreign / "config.json").read_text())
    config.update(module="keras_hub.src.models.resnet", registered_name="keras_hub>ResNetBackbone")
    (foreign / "config.json").write_text(json.dumps(config))
    with pytest.raises(ValueError) as info:
        load_pretrained(foreign)
    assert "'keras_hub>ResNetBackbone', a class of the package 'keras_hub'" in str(info.value)
    assert "\n" not in str(info.value)


class _Quiet(http.server.SimpleHTTPRequestHandler):
    def log_message(self, *args):
        pass


@pytest.fixture(scope="module")
def server(published):
    """An http server on 127.0.0.1 serving the published folder's parent."""
    _, out, _ = published

    def handler(*args, **kwargs):
        return _Quiet(*args, directory=str(out.parent), **kwargs)

    httpd = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
    thread = threading.Thread(target=httpd.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{httpd.server_address[1]}"
    httpd.shutdown()


def test_load_from_an_address_with_its_hash_and_cache(published, server, tmp_path):
    meta, _, outputs = published
    url = f"{server}/cnn_eca"
    model = load_pretrained(url, sha256=meta["weights_sha256"], cache_dir=tmp_path)
    np.testing.assert_allclose(_numpy(model(_images(), training=False)), outputs[1], atol=1e-6)
    cached = list(tmp_path.rglob("model.weights.h5"))
    assert len(cached) == 1 and sha256_of(cached[0]) == meta["weights_sha256"]
    with pytest.raises(ValueError, match=r"cnn_eca/model.weights.h5 does not have the SHA-256"):
        load_pretrained(url, sha256="0" * 64, cache_dir=tmp_path / "other")
    with pytest.raises(ValueError, match=r"Could not download .*/missing/metadata.json: .*404"):
        load_pretrained(f"{server}/missing", cache_dir=tmp_path)


def test_hf_goes_through_keras_own_hub_loader(published, monkeypatch):
    from keras.src.saving import saving_lib

    _, out, outputs = published
    calls = []

    class FakeHub:  # what Keras calls: snapshot_download(repo_id=...) -> a local folder
        @staticmethod
        def snapshot_download(repo_id, **kwargs):
            calls.append(repo_id)
            return str(out)

    monkeypatch.setattr(saving_lib, "huggingface_hub", FakeHub)
    model = load_pretrained("hf://someone/cnn_eca")
    assert calls == ["someone/cnn_eca"]
    np.testing.assert_allclose(_numpy(model(_images(), training=False)), outputs[1], atol=1e-6)
    with pytest.raises(ValueError, match="pinned by its repository"):
        load_pretrained("hf://someone/cnn_eca", sha256="00")


def test_a_fresh_process_loads_it_without_the_results_folder(published, server, tmp_path):
    meta, out, outputs = published
    moved = tmp_path / "elsewhere"
    shutil.copytree(out, moved)
    np.save(tmp_path / "images.npy", _images())
    sources = [(str(moved), None, "local"), (f"{server}/cnn_eca", meta["weights_sha256"], "http")]
    code = textwrap.dedent(
        f"""
        import numpy as np, keras_attn
        images = np.load({str(tmp_path / "images.npy")!r})
        for source, sha, kind in {sources!r}:
            model = keras_attn.load_pretrained(source, sha256=sha, cache_dir={str(tmp_path)!r})
            np.save({str(tmp_path)!r} + "/fresh_" + kind, model.predict(images, verbose=0))
        """
    )
    env = {
        **os.environ,
        "KERAS_BACKEND": keras.backend.backend(),
        "PYTHONPATH": os.pathsep.join(sys.path),
    }
    proc = subprocess.run(
        [sys.executable, "-c", code], env=env, capture_output=True, text=True, cwd=tmp_path
    )
    assert proc.returncode == 0, proc.stderr[-3000:]
    for kind in ("local", "http"):
        fresh = np.load(tmp_path / f"fresh_{kind}.npy")
        diff = float(np.abs(fresh - outputs[1]).max())
        print(f"fresh process, {kind}: largest difference {diff:.1e}")
        assert diff <= 1e-6
