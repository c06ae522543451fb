"""The benchmark package (smoke runs, no timing assertions) and the fast path's equivalence.

The command line (keras-attn benchmark) is tested in test_benchmark_script.py.
"""

import json

import keras
import numpy as np
import pytest

import keras_attn
from keras_attn import benchmark
from keras_attn.benchmark import run_benchmark, write_benchmark
from keras_attn.benchmark.table import format_table
from keras_attn.protocol.training import compile_for_training, fast_path

# A small network with every kind of attention layer, so one step takes milliseconds.
SMALL = {
    "input_shape": [12, 12, 3],
    "blocks": [4, 8],
    "dense_units": 16,
    "conv_ae": {"filters": [4]},
}
# Every attention layer at every site, in one model: one check covers them all.
EVERY_BLOCK = ["eca", "cbam", "conv_ae", "linear_ae", "cbam_spatial"]


def _one_step(seed, x, y, overrides, **compile_kwargs):
    keras.utils.set_random_seed(seed)
    model = keras_attn.build("cnn", **SMALL, attention=EVERY_BLOCK, **overrides)
    compile_for_training(model, learning_rate=0.1, momentum=0.9, **compile_kwargs)
    logs = model.train_on_batch(x, y, return_dict=True)
    return model, logs


# The fast-path check's one batch, and its eager steps by overrides.
_RNG = np.random.default_rng(0)
X = _RNG.integers(0, 256, (8, 12, 12, 3)).astype("float32")
Y = _RNG.integers(0, 10, 8)
_EAGER = {}


def _eager_step(overrides):
    """`_one_step` on ``X, Y`` run eagerly, once per set of overrides: both parametrizations
    compare with it (under JAX an eager step compiles every operation on its own)."""
    key = repr(sorted(overrides.items()))
    if key not in _EAGER:
        _EAGER[key] = _one_step(5, X, Y, overrides, run_eagerly=True)
    return _EAGER[key]


@pytest.mark.parametrize("jit", [True, False])
def test_fast_path_matches_eager_step(jit):
    """Compiled (jit or graph) and eager: same weights in, same weights and loss out.

    TensorFlow's XLA draws other dropout masks than its eager and graph modes
    (same distribution, other numbers), so with TensorFlow and jit the check
    runs without dropout; everywhere else dropout stays on. test_backends.py runs
    this test again under JAX, with every gate at one site: JAX's eager step compiles
    each operation on its own, and all four sites took 40 s of a 2-core CPU.
    """
    if not jit and keras.backend.backend() == "jax":
        pytest.skip("on JAX, a step without jit_compile is the eager step itself")
    overrides = {}
    if jit and keras.backend.backend() == "tensorflow":
        overrides = {"dropout": 0.0, "spatial_dropout": 0.0}
    if keras.backend.backend() == "jax":
        overrides = {"sites": [1]}
    eager, eager_logs = _eager_step(overrides)
    model, logs = _one_step(5, X, Y, overrides, jit_compile=jit)
    assert model.jit_compile is jit and not model.run_eagerly
    assert logs["loss"] == pytest.approx(eager_logs["loss"], rel=1e-5)
    for v, ref in zip(model.variables, eager.variables):
        np.testing.assert_allclose(
            keras.ops.convert_to_numpy(v),
            keras.ops.convert_to_numpy(ref),
            rtol=1e-4,
            atol=1e-5,
            err_msg=v.path,
        )


def test_fast_path_choices():
    assert fast_path("tensorflow", accelerator=False)["jit_compile"] is False
    assert fast_path("tensorflow", accelerator=True)["jit_compile"] is True
    assert fast_path("jax", accelerator=False)["jit_compile"] is True
    assert fast_path("torch", accelerator=False)["jit_compile"] is False
    for backend in ("tensorflow", "jax", "torch"):
        for acc in (False, True):
            settings = fast_path(backend, accelerator=acc)
            assert settings["mixed_precision"] is None
            assert settings["group_size"] >= 1
    assert fast_path()["jit_compile"] in (True, False)
    with pytest.raises(ValueError, match="Unknown backend"):
        fast_path("mxnet")


def test_compile_for_training_defaults_to_fast_path():
    model = compile_for_training(keras_attn.build("cnn_eca", **SMALL))
    assert model.jit_compile is fast_path()["jit_compile"]
    assert isinstance(model.optimizer, keras.optimizers.SGD)


def test_run_benchmark_tiny():
    lines = []
    result = run_benchmark(
        ["cnn_eca"],
        batch_size=2,
        warmup_steps=1,
        windows=2,
        steps_per_window=1,
        pipeline=True,
        pipeline_images=32,
        fit_check=True,
        progress=lines.append,
    )
    assert [r["model"] for r in result["results"]] == ["cnn", "cnn_eca"]  # baseline added
    for r in result["results"]:
        assert r["train_images_per_s"] > 0 and r["inference_images_per_s"] > 0
        assert len(r["train_step_s"]) == 2
        assert r["macs_per_image"] > 0 and r["peak_host_rss_mb"] > 0
        assert r["peak_device_mb"] is None or r["peak_device_mb"] >= 0
        assert isinstance(r["meets_target"], bool)
    base = result["results"][0]
    assert base["train_step_ratio"] == 1.0 and base["mac_ratio"] == 1.0
    assert result["pipeline"]["images_per_s"] > 0
    assert result["fit_check"]["images_per_s"] > 0
    env = result["environment"]
    for key in ("backend", "device", "versions", "threads", "TF_ENABLE_ONEDNN_OPTS"):
        assert key in env
    assert any("cnn_eca" in line for line in lines)
    json.dumps(result)  # JSON-able
    table = format_table(result)
    assert "cnn_eca" in table and "input pipeline" in table


def test_run_benchmark_settings_side_by_side_and_custom_builders():
    result = run_benchmark(
        [("small_cbam", lambda: keras_attn.build("cnn_cbam", **SMALL))],
        settings=[{"jit_compile": False}, {"eager": True}],
        batch_size=2,
        warmup_steps=1,
        windows=1,
        steps_per_window=1,
        pipeline=False,
        fit_check=False,
        progress=lambda line: None,
    )
    labels = {(r["model"], r["setting"]) for r in result["results"]}
    assert len(labels) == 4
    first = result["settings"]["settings"][0]["label"]
    assert all(f"speedup_vs_{first}" in r for r in result["results"])
    assert "speedup" in format_table(result)


def test_run_benchmark_errors():
    quiet = {"progress": lambda line: None, "pipeline": False, "fit_check": False}
    with pytest.raises(ValueError, match="Unknown model"):
        run_benchmark(["cnn_ecaa"], **quiet)
    with pytest.raises(ValueError, match="batch_size"):
        run_benchmark(["cnn"], batch_size=0, **quiet)
    with pytest.raises(ValueError, match="mixed_precision"):
        run_benchmark(["cnn"], mixed_precision="float8", **quiet)
    with pytest.raises(ValueError, match="Unknown benchmark setting"):
        run_benchmark(["cnn"], settings=[{"xla": True}], **quiet)
    with pytest.raises(ValueError, match="pair"):
        run_benchmark([42], **quiet)


def test_write_benchmark_is_atomic(tmp_path):
    path = tmp_path / "sub" / "bench.json"
    write_benchmark({"a": 1}, path)
    write_benchmark({"a": 2}, path)
    assert json.loads(path.read_text()) == {"a": 2}
    assert [p.name for p in path.parent.iterdir()] == ["bench.json"]


def test_gates_alone_are_timed_per_site():
    result = benchmark.benchmark_gates(
        ["cnn_cbam", "cnn_conv_ae", "gc"],
        batch_size=2,
        warmup_steps=1,
        windows=2,
        steps_per_window=1,
    )
    rows = {row["name"]: row for row in result["rows"]}
    assert list(rows) == ["conv3x3", "cbam", "conv_ae", "gc"]  # a gate name: at cnn's sites
    for row in rows.values():
        assert sorted(row["site_ms"]) == ["site1", "site2", "site3", "site4"]
        assert all(ms > 0 for ms in row["site_ms"].values())
        assert row["total_ms"] == pytest.approx(sum(row["site_ms"].values()))
    assert "conv_ae" in benchmark.format_gates(result)
    with pytest.raises(ValueError, match="has no attention sites"):
        benchmark.benchmark_gates(["cnn"], batch_size=2, windows=1, steps_per_window=1)
    with pytest.raises(ValueError, match="batch_size"):
        benchmark.benchmark_gates(batch_size=0)


def test_probes_and_timing():
    from keras_attn.benchmark.probes import RssSampler
    from keras_attn.benchmark.timing import time_window

    sampler = RssSampler(interval=0.001)
    sampler.start()
    block = np.ones(64 * 2**20, dtype=np.uint8)  # 64 MiB, touched
    peak = sampler.take_peak()
    del block
    assert peak >= 64 * 2**20
    sampler.stop()
    sampler.join(timeout=5)
    assert not sampler.is_alive()
    calls = []
    wall, cpu = time_window(lambda: calls.append(1) or keras.ops.ones((2,)), steps=3)
    assert len(calls) == 3 and wall > 0 and cpu >= 0


def test_a_custom_baseline_gives_the_macs_and_input_of_its_own_model():
    small = {"input_shape": [12, 12, 3], "blocks": [4], "dense_units": 8}
    result = run_benchmark(
        [("cnn", lambda: keras_attn.build("cnn", **small))],
        batch_size=2,
        warmup_steps=1,
        windows=1,
        steps_per_window=1,
        pipeline=True,
        pipeline_images=8,
        fit_check=True,
        progress=lambda line: None,
    )
    (row,) = result["results"]
    assert row["mac_ratio"] == 1.0 and row["train_step_ratio"] == 1.0
    assert result["fit_check"]["images_per_s"] > 0


def test_package_layout():
    """Small files, and no benchmark module importing a private name (even its own
    package's)."""
    from test_structure import MODULES, _imports

    files = {n: p for n, p in MODULES.items() if n.split(".")[:2] == ["keras_attn", "benchmark"]}
    expected = {"variants", "gates", "trainers", "probes", "timing"}
    assert {n.rsplit(".", 1)[1] for n in files} >= expected
    for name, path in files.items():
        assert len(path.read_text().splitlines()) <= 400, path.name
        for module, names in _imports(name, path, top_level_only=False):
            # a private module (keras_attn._files) is shared; its names are not
            private = [n for n in names if n.startswith("_") and f"{module}.{n}" not in MODULES]
            assert not private, f"{path.name} imports {private} from {module}"
