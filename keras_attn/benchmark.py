"""Training and inference speed of the variants, against their arithmetic.

`run_benchmark` builds every variant asked for, compiles it the way the protocol
trains (SGD, sparse categorical cross-entropy, accuracy), and times training
steps (``train_on_batch``) and inference (``predict_on_batch``) on random
images. All variants are measured side by side in one process: after a warm-up,
timed windows are taken round-robin over the variants (window ``w`` of variant
``v`` runs between window ``w`` of variant ``v - 1`` and of ``v + 1``), so a
change in machine load during the run hits every variant alike. The figure of a
variant is the median over its windows.

For each variant the result holds its forward multiply-accumulates per image
(`keras_attn.flops`), the ratio of its step time to ``cnn``'s (measured in the
same run, same settings) and that ratio divided by the MAC ratio: attention
"costs what its arithmetic costs" when that quotient is near 1. The issue's
target on CPU is at most 1.2.

The input pipeline (`keras_attn.data.ArrayBatches`, uint8 arrays in memory,
batches cast to float32) is timed alone, and one epoch of ``model.fit`` on it is
compared with the bare step time of the baseline, so the result says whether
the pipeline could ever be the bottleneck.

Memory: the resident set size of the process is sampled every 20 ms by a
thread; each variant reports the peak seen while it was being built and warmed
up and while its windows ran. The process holds every variant's model at once,
so later variants' peaks include earlier ones' weights; ``host_rss_growth_mb``
(the growth of the peak while the variant was built and warmed up) is the
variant's own share. Device memory is read where there is a device (JAX, TF or
PyTorch GPU); it is ``None`` on a CPU.

`fast_path` gives the compile settings this benchmark found fastest per backend
and device; the protocol and the tuner use them by default.

Command line: ``python scripts/benchmark.py --help`` (or
``python -m keras_attn.benchmark``).
"""

from __future__ import annotations

import argparse
import datetime
import json
import math
import os
import statistics
import subprocess
import sys
import threading
import time

__all__ = [
    "DEFAULT_TARGET",
    "GATE_VARIANTS",
    "add_ratios",
    "benchmark_gates",
    "benchmark_pipeline",
    "compile_for_training",
    "device_description",
    "environment",
    "fast_path",
    "format_gates",
    "format_table",
    "main",
    "parse_args",
    "project_protocol",
    "run_benchmark",
    "write_json",
]

#: The issue's target: a variant's step time ratio to ``cnn`` over its MAC ratio.
DEFAULT_TARGET = 1.2
BASELINE = "cnn"
_MB = 1024.0 * 1024.0


# --------------------------------------------------------------------------- environment


from keras_attn._checks import check_positive_int  # noqa: E402
from keras_attn.runtime import (  # noqa: E402
    accelerators,
    device_description,
    thread_pools,
)
from keras_attn.runtime import backend as _backend  # noqa: E402
from keras_attn.runtime import environment as runtime_environment  # noqa: E402
from keras_attn.training import compile_for_training, fast_path  # noqa: E402


def environment():
    """`keras_attn.runtime.environment` plus what affects speed: thread pools, dtype, load.

    Example:
    >>> environment()["backend"] in ("tensorflow", "jax", "torch")
    True
    """
    import keras

    load = os.getloadavg() if hasattr(os, "getloadavg") else None
    return {
        **runtime_environment(),
        "thread_pools": thread_pools(),
        "dtype_policy": keras.config.dtype_policy().name,
        "load_average_at_start": list(load) if load else None,
        "date": datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds"),
    }


# --------------------------------------------------------------------------- memory


class _RssSampler(threading.Thread):
    """Samples the process' resident set size; `take_peak` returns and resets the peak."""

    def __init__(self, interval=0.02):
        super().__init__(daemon=True, name="rss-sampler")
        self._interval = interval
        self._stop = threading.Event()
        self._lock = threading.Lock()
        self._peak = self.rss()

    @staticmethod
    def rss():
        """Resident set size in bytes (Linux ``/proc``; psutil elsewhere, 0 without it)."""
        try:
            with open("/proc/self/statm") as f:
                return int(f.read().split()[1]) * os.sysconf("SC_PAGE_SIZE")
        except (OSError, ValueError, IndexError):
            try:
                import psutil
            except ImportError:
                return 0
            return psutil.Process().memory_info().rss

    def run(self):
        while not self._stop.wait(self._interval):
            value = self.rss()
            with self._lock:
                self._peak = max(self._peak, value)

    def take_peak(self):
        value = self.rss()
        with self._lock:
            peak, self._peak = max(self._peak, value), value
        return peak

    def stop(self):
        self._stop.set()


def _reset_device_peak():
    backend = _backend()
    try:
        if backend == "tensorflow" and accelerators():
            import tensorflow as tf

            tf.config.experimental.reset_memory_stats("GPU:0")
        elif backend == "torch":
            import torch

            if torch.cuda.is_available():
                torch.cuda.reset_peak_memory_stats()
    except Exception:  # noqa: BLE001 - memory statistics are best effort
        pass


def _device_peak_mb():
    """Peak device memory (MiB) since the last reset, or None without a device."""
    backend = _backend()
    try:
        if backend == "jax":
            import jax

            device = jax.devices()[0]
            if device.platform == "cpu":
                return None
            stats = device.memory_stats() or {}
            peak = stats.get("peak_bytes_in_use")
            return None if peak is None else peak / _MB
        if backend == "tensorflow" and accelerators():
            import tensorflow as tf

            return tf.config.experimental.get_memory_info("GPU:0")["peak"] / _MB
        if backend == "torch":
            import torch

            if torch.cuda.is_available():
                return torch.cuda.max_memory_allocated() / _MB
    except Exception:  # noqa: BLE001
        return None
    return None


# --------------------------------------------------------------------------- timing


def _sync(value):
    """Wait for the device: convert a result to NumPy."""
    import keras

    if isinstance(value, (list, tuple)):
        for v in value:
            _sync(v)
    elif value is not None and not isinstance(value, (int, float)):
        keras.ops.convert_to_numpy(value)


def _time_window(fn, steps):
    """``(wall seconds, process CPU seconds)`` per call of ``fn``, over ``steps`` calls.

    CPU time (all threads of this process) is what a step costs the machine; unlike
    wall time it hardly grows when other processes compete for the cores.
    """
    start, cpu_start = time.perf_counter(), time.process_time()
    out = None
    for _ in range(steps):
        out = fn()
    _sync(out)
    return (time.perf_counter() - start) / steps, (time.process_time() - cpu_start) / steps


def benchmark_pipeline(batch_size=128, images=45000, input_shape=(32, 32, 3), max_batches=200):
    """Images per second that `keras_attn.data.ArrayBatches` delivers, alone.

    Random uint8 images (as many as CIFAR-10's training split by default) are
    batched with ``shuffle=True`` the way the protocol does, in the calling
    thread. With its default single worker, ``model.fit`` reads a ``PyDataset``
    in step with training, so the time per batch measured here is added to every
    training step: it must be small next to the step time (the issue asks for
    at least 10x the model's throughput).

    Args:
        batch_size: int, default 128.
        images: int, default 45,000; images held in memory.
        input_shape: image shape, default ``(32, 32, 3)``.
        max_batches: int, default 200; batches timed (at most one epoch).

    Returns:
        dict with ``images_per_s``, ``batch_ms`` (median per batch), the
        settings, and ``source`` (the class used).

    Example:
    >>> benchmark_pipeline(batch_size=8, images=64, max_batches=4)["images_per_s"] > 0
    True
    """
    import numpy as np

    from keras_attn.data import ArrayBatches

    check_positive_int("batch_size", batch_size)
    check_positive_int("images", images)
    check_positive_int("max_batches", max_batches)
    rng = np.random.default_rng(0)
    x = rng.integers(0, 256, (images, *input_shape), dtype=np.uint8)
    y = rng.integers(0, 10, images)
    batches = ArrayBatches(x, y, batch_size, shuffle=True, seed=0)
    batches.set_epoch(1)
    n = min(len(batches), max_batches)
    batches[0]  # first touch of the arrays
    times, count = [], 0
    start = time.perf_counter()
    for i in range(n):
        t = time.perf_counter()
        xb, _ = batches[i]
        times.append(time.perf_counter() - t)
        count += len(xb)
    total = time.perf_counter() - start
    return {
        "source": "keras_attn.data.ArrayBatches (shuffle=True, uint8 -> float32)",
        "batch_size": batch_size,
        "images_in_memory": images,
        "batches_timed": n,
        "images_per_s": count / total,
        "batch_ms": 1000 * statistics.median(times),
    }


def _fit_check(model, batch_size, steps, input_shape):
    """Images/s of ``model.fit`` on ArrayBatches for ``steps`` batches (after one warm-up fit)."""
    import numpy as np

    from keras_attn.data import ArrayBatches

    rng = np.random.default_rng(1)
    n = batch_size * steps
    x = rng.integers(0, 256, (n, *input_shape), dtype=np.uint8)
    y = rng.integers(0, 10, n)
    warm = ArrayBatches(x[: 2 * batch_size], y[: 2 * batch_size], batch_size, shuffle=True)
    model.fit(warm, epochs=1, shuffle=False, verbose=0)
    batches = ArrayBatches(x, y, batch_size, shuffle=True, seed=0)
    start, cpu_start = time.perf_counter(), time.process_time()
    model.fit(batches, epochs=1, shuffle=False, verbose=0)
    seconds, cpu = time.perf_counter() - start, time.process_time() - cpu_start
    return {
        "steps": steps,
        "seconds": seconds,
        "cpu_seconds_per_step": cpu / steps,
        "images_per_s": n / seconds,
    }


def _model_names(models):
    import keras_attn

    available = list(keras_attn.list_models())
    if models is None:
        names = available
    elif isinstance(models, str):
        names = [m.strip() for m in models.split(",") if m.strip()]
    else:
        names = list(models)
    if not names:
        raise ValueError("`models` is empty: give at least one variant name.")
    specs = {}
    for item in names:
        if isinstance(item, tuple) and len(item) == 2 and callable(item[1]):
            label, build_fn = item
        elif isinstance(item, str):
            if item not in available:
                keras_attn.get_config(item)  # raises, naming close matches
            label, build_fn = item, (lambda n=item: keras_attn.build(n))
        else:
            raise ValueError(
                f"Each entry of `models` must be a variant name or a (label, build_fn) pair, "
                f"got {item!r}."
            )
        if label in specs:
            raise ValueError(f"`models` names {label!r} twice.")
        specs[label] = build_fn
    if BASELINE not in specs:  # ratios need the baseline measured in the same run
        specs = {BASELINE: lambda: keras_attn.build(BASELINE), **specs}
    return specs


def _normalize_settings(settings, jit_compile, mixed_precision, run_eagerly):
    if settings is None:
        settings = [
            {"jit_compile": jit_compile, "mixed_precision": mixed_precision, "eager": run_eagerly}
        ]
    out = []
    for s in settings:
        unknown = set(s) - {"jit_compile", "mixed_precision", "eager"}
        if unknown:
            raise ValueError(
                f"Unknown benchmark setting(s) {sorted(unknown)}: use jit_compile, "
                "mixed_precision, eager."
            )
        jit = s.get("jit_compile")
        if jit is None:
            jit = fast_path()["jit_compile"]
        eager = bool(s.get("eager", False))
        policy = s.get("mixed_precision")
        if policy not in (None, "mixed_float16", "mixed_bfloat16"):
            raise ValueError(
                f"`mixed_precision` must be None, 'mixed_float16' or 'mixed_bfloat16', "
                f"got {policy!r}."
            )
        label = (
            "eager"
            if eager
            else ("jit" if jit else "graph" if _backend() == "tensorflow" else "nojit")
        )
        if policy:
            label += "+" + policy.replace("mixed_", "")
        out.append(
            {
                "label": label,
                "jit_compile": bool(jit and not eager),
                "eager": eager,
                "mixed_precision": policy,
            }
        )
    labels = [s["label"] for s in out]
    if len(set(labels)) != len(labels):
        raise ValueError(f"Benchmark settings repeat themselves: {labels}.")
    return out


def run_benchmark(
    models=None,
    *,
    batch_size=128,
    jit_compile=None,
    mixed_precision=None,
    run_eagerly=False,
    settings=None,
    warmup_steps=2,
    windows=5,
    steps_per_window=3,
    inference_batch_size=None,
    pipeline=True,
    pipeline_images=45000,
    fit_check=True,
    target=DEFAULT_TARGET,
    seed=0,
    progress=None,
):
    """Time training and inference of the variants side by side; return a JSON-able dict.

    Args:
        models: list or comma-separated str of variant names; default every
            registered variant. ``cnn`` is always added (the ratios need it).
            An entry may also be a ``(label, build_fn)`` pair, ``build_fn()``
            returning a model to measure (for example a prototype of a layer).
        batch_size: int, default 128; images per training step.
        jit_compile: bool or None (default: `fast_path`'s choice).
        mixed_precision: None (default), ``"mixed_bfloat16"`` or
            ``"mixed_float16"``: the dtype policy the models are built under.
        run_eagerly: bool, default False; op-by-op execution.
        settings: list of dicts with keys ``jit_compile``, ``mixed_precision``,
            ``eager`` to measure several settings in the same run (e.g.
            ``[{"jit_compile": False}, {"jit_compile": True}]``); replaces the
            three arguments above.
        warmup_steps: int, default 2; untimed steps (compilation happens here).
        windows: int, default 5; timed windows per variant (median reported).
        steps_per_window: int, default 3; steps per window.
        inference_batch_size: int, default ``batch_size``.
        pipeline: bool, default True; also time `keras_attn.data.ArrayBatches`.
        pipeline_images: int, default 45,000; images the pipeline holds.
        fit_check: bool, default True; also time one ``model.fit`` epoch of the
            baseline on ArrayBatches (``windows * steps_per_window`` batches).
        target: float, default 1.2; the cost-over-arithmetic bound to check.
        seed: int, default 0; seeds weights and the random images.
        progress: callable taking one line of text, default ``print`` to stderr.

    Returns:
        dict: ``settings`` (the run's), ``environment``, ``results`` (one dict
        per variant and setting: MACs, step times, images/s, ratios, memory),
        ``pipeline`` and ``fit_check`` (or None), ``wall_seconds``.

    Example:
    >>> result = run_benchmark(["cnn"], batch_size=2, warmup_steps=1, windows=1,
    ...                        steps_per_window=1, pipeline=False, fit_check=False,
    ...                        progress=lambda line: None)  # doctest: +SKIP
    >>> result["results"][0]["train_images_per_s"] > 0  # doctest: +SKIP
    True
    """
    import keras
    import numpy as np

    import keras_attn
    from keras_attn.flops import count_macs, mac_summary

    for name, value in (
        ("batch_size", batch_size),
        ("warmup_steps", warmup_steps),
        ("windows", windows),
        ("steps_per_window", steps_per_window),
    ):
        check_positive_int(name, value)
    inference_batch_size = inference_batch_size or batch_size
    check_positive_int("inference_batch_size", inference_batch_size)
    if progress is None:

        def progress(line):
            print(line, file=sys.stderr, flush=True)

    specs = _model_names(models)
    names = list(specs)
    configs = _normalize_settings(settings, jit_compile, mixed_precision, run_eagerly)
    started = time.perf_counter()
    env = environment()
    progress(
        f"[benchmark] {env['backend']} on {env['device']}; {len(names)} variants x "
        f"{len(configs)} setting(s) ({', '.join(c['label'] for c in configs)}), batch {batch_size}"
    )

    sampler = _RssSampler()
    sampler.start()
    rng = np.random.default_rng(seed)
    input_shape = tuple(keras_attn.get_config(BASELINE)["input_shape"])
    arrays = {}

    def data_for(model):
        """Random images of the model's input shape (the same arrays for every model)."""
        shape = tuple(model.inputs[0].shape[1:])
        classes = int(model.outputs[0].shape[-1])
        if (shape, classes) not in arrays:
            arrays[shape, classes] = (
                rng.integers(0, 256, (batch_size, *shape)).astype("float32"),
                rng.integers(0, classes, batch_size),
                rng.integers(0, 256, (inference_batch_size, *shape)).astype("float32"),
            )
        return arrays[shape, classes]

    baseline_macs = count_macs(keras_attn.build(BASELINE))

    entries = []
    previous_policy = keras.config.dtype_policy()
    try:
        for config in configs:
            for name in names:
                keras.utils.set_random_seed(seed)
                sampler.take_peak()
                before = sampler.rss()
                keras.config.set_dtype_policy(config["mixed_precision"] or "float32")
                try:
                    model = specs[name]()
                finally:
                    keras.config.set_dtype_policy(previous_policy)
                summary = mac_summary(model, baseline=baseline_macs)
                compile_for_training(
                    model, jit_compile=config["jit_compile"], run_eagerly=config["eager"]
                )
                x, y, x_infer = data_for(model)
                _reset_device_peak()
                t0 = time.perf_counter()
                for _ in range(warmup_steps):
                    model.train_on_batch(x, y)
                t_train = time.perf_counter() - t0
                t0 = time.perf_counter()
                for _ in range(warmup_steps):
                    _sync(model.predict_on_batch(x_infer))
                t_infer = time.perf_counter() - t0
                peak = sampler.take_peak()
                entry = {
                    "model": name,
                    "setting": config["label"],
                    "jit_compile": config["jit_compile"],
                    "eager": config["eager"],
                    "mixed_precision": config["mixed_precision"],
                    "trainable_params": keras_attn.count_trainable_params(model),
                    "macs_per_image": summary["macs"],
                    "attention_macs_per_image": summary["attention_macs"],
                    "mac_ratio": summary["ratio"],
                    "warmup_seconds": {"train": t_train, "inference": t_infer},
                    "host_rss_growth_mb": (peak - before) / _MB,
                    "peak_host_rss_mb": peak / _MB,
                    "peak_device_mb": _device_peak_mb(),
                    "train_step_s": [],
                    "train_step_cpu_s": [],
                    "inference_batch_s": [],
                    "inference_batch_cpu_s": [],
                    "_model": model,
                }
                entries.append(entry)
                progress(
                    f"[benchmark] {name} ({config['label']}): built, {summary['macs'] / 1e6:.1f}M "
                    f"MACs/image, warm-up {t_train:.1f}s train + {t_infer:.1f}s inference"
                )
        # Seeding before each build (tf.random.set_seed) makes TensorFlow retrace the
        # functions of the models built before: one more untimed step each, now.
        for entry in entries:
            x, y, x_infer = data_for(entry["_model"])
            entry["_model"].train_on_batch(x, y)
            _sync(entry["_model"].predict_on_batch(x_infer))
        # Timed windows, round-robin over every (variant, setting).
        for w in range(windows):
            order = entries[w % len(entries) :] + entries[: w % len(entries)]
            for entry in order:
                model = entry["_model"]
                x, y, x_infer = data_for(model)
                sampler.take_peak()
                _reset_device_peak()
                wall, cpu = _time_window(
                    lambda m=model, x=x, y=y: m.train_on_batch(x, y), steps_per_window
                )
                entry["train_step_s"].append(wall)
                entry["train_step_cpu_s"].append(cpu)
                wall, cpu = _time_window(
                    lambda m=model, x=x_infer: m.predict_on_batch(x), steps_per_window
                )
                entry["inference_batch_s"].append(wall)
                entry["inference_batch_cpu_s"].append(cpu)
                entry["peak_host_rss_mb"] = max(
                    entry["peak_host_rss_mb"], sampler.take_peak() / _MB
                )
                device_peak = _device_peak_mb()
                if device_peak is not None:
                    entry["peak_device_mb"] = max(entry["peak_device_mb"] or 0.0, device_peak)
            progress(
                f"[benchmark] window {w + 1}/{windows}: "
                + ", ".join(
                    f"{e['model']}/{e['setting']} {1000 * e['train_step_s'][-1]:.0f}ms"
                    for e in entries
                )
            )

        fit = None
        if fit_check:
            base = next(e for e in entries if e["model"] == BASELINE)
            progress(f"[benchmark] fit check: {BASELINE} ({base['setting']}) on ArrayBatches")
            fit = _fit_check(base["_model"], batch_size, windows * steps_per_window, input_shape)
            fit["setting"] = base["setting"]
        pipe = None
        if pipeline:
            progress("[benchmark] input pipeline: ArrayBatches")
            pipe = benchmark_pipeline(batch_size, images=pipeline_images, input_shape=input_shape)
    finally:
        sampler.stop()
        keras.config.set_dtype_policy(previous_policy)

    # Figures and ratios.
    results = []
    for entry in entries:
        entry.pop("_model")
        step = statistics.median(entry["train_step_s"])
        infer = statistics.median(entry["inference_batch_s"])
        entry.update(
            {
                "train_step_ms": 1000 * step,
                "train_images_per_s": batch_size / step,
                "inference_batch_ms": 1000 * infer,
                "inference_images_per_s": inference_batch_size / infer,
            }
        )
        results.append(entry)
    add_ratios(results, target)
    if len(configs) > 1:
        first = configs[0]["label"]
        for entry in results:
            ref = next(e for e in results if e["model"] == entry["model"] and e["setting"] == first)
            entry[f"speedup_vs_{first}"] = ref["train_step_ms"] / entry["train_step_ms"]
    fastest = max(e["train_images_per_s"] for e in results)
    if pipe is not None:
        pipe["fastest_model_train_images_per_s"] = fastest
        pipe["ratio_to_fastest_model"] = pipe["images_per_s"] / fastest
        pipe["meets_10x"] = pipe["ratio_to_fastest_model"] >= 10
    if fit is not None:
        base = next(e for e in results if e["model"] == BASELINE and e["setting"] == fit["setting"])
        fit["train_on_batch_images_per_s"] = base["train_images_per_s"]
        fit["fit_over_bare_step"] = fit["images_per_s"] / base["train_images_per_s"]
        # The same from CPU seconds (robust to other processes on the machine).
        fit["fit_over_bare_step_cpu"] = (
            statistics.median(base["train_step_cpu_s"]) / fit["cpu_seconds_per_step"]
        )
    projection = project_protocol(results)
    load = os.getloadavg() if hasattr(os, "getloadavg") else None
    env["load_average_at_end"] = list(load) if load else None
    try:
        import resource

        env["process_max_rss_mb"] = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    except (ImportError, OSError):  # pragma: no cover - not on Windows
        pass
    return {
        "format": 1,
        "settings": {
            "models": names,
            "baseline": BASELINE,
            "batch_size": batch_size,
            "inference_batch_size": inference_batch_size,
            "settings": [{k: v for k, v in c.items()} for c in configs],
            "warmup_steps": warmup_steps,
            "windows": windows,
            "steps_per_window": steps_per_window,
            "timing": "median over windows of (window seconds / steps); windows round-robin "
            "over variants; train = train_on_batch (SGD lr 0.01, sparse CE, accuracy), "
            "inference = predict_on_batch; random float32 images 0..255",
            "optimizer": "SGD(learning_rate=0.01)",
            "target_cost_over_arithmetic": target,
            "seed": seed,
        },
        "environment": env,
        "results": results,
        "pipeline": pipe,
        "fit_check": fit,
        "protocol_projection": projection,
        "wall_seconds": time.perf_counter() - started,
    }


def add_ratios(results, target=DEFAULT_TARGET):
    """Add each entry's ratios to the baseline measured in the same run and setting.

    ``train_step_ratio`` is the ratio of median step times; ``cost_over_arithmetic``
    divides it by the MAC ratio and ``meets_target`` compares that with
    ``target``. Figures less sensitive to other processes on the machine are
    added: ``train_step_ratio_paired``, the median over windows of the ratio of
    the variant's window to the baseline's window of the same round (taken
    seconds apart); ``train_step_ratio_best``, the ratio of the fastest
    windows; and, where CPU times were recorded, ``train_cpu_ratio`` (median
    process CPU seconds per step over the baseline's), with
    ``cost_over_arithmetic_cpu`` and ``meets_target_cpu``.

    Args:
        results: list of result entries (`run_benchmark`'s ``"results"``).
        target: float, default 1.2.

    Returns:
        ``results``, updated in place.

    Example:
    >>> rows = [{"model": "cnn", "setting": "graph", "train_step_s": [1.0, 1.2],
    ...          "inference_batch_s": [0.3], "mac_ratio": 1.0},
    ...         {"model": "cnn_x", "setting": "graph", "train_step_s": [2.0, 2.6],
    ...          "inference_batch_s": [0.6], "mac_ratio": 2.0}]
    >>> round(add_ratios(rows)[1]["cost_over_arithmetic"], 3)
    1.045
    """
    for entry in results:
        entry["train_step_ms"] = 1000 * statistics.median(entry["train_step_s"])
        entry["inference_batch_ms"] = 1000 * statistics.median(entry["inference_batch_s"])
    for entry in results:
        base = next(
            e for e in results if e["model"] == BASELINE and e["setting"] == entry["setting"]
        )
        entry["train_step_ratio"] = entry["train_step_ms"] / base["train_step_ms"]
        entry["train_step_ratio_paired"] = statistics.median(
            a / b for a, b in zip(entry["train_step_s"], base["train_step_s"])
        )
        entry["train_step_ratio_best"] = min(entry["train_step_s"]) / min(base["train_step_s"])
        entry["inference_ratio"] = entry["inference_batch_ms"] / base["inference_batch_ms"]
        entry["cost_over_arithmetic"] = entry["train_step_ratio"] / entry["mac_ratio"]
        entry["cost_over_arithmetic_paired"] = entry["train_step_ratio_paired"] / entry["mac_ratio"]
        entry["meets_target"] = entry["cost_over_arithmetic"] <= target
        if entry.get("train_step_cpu_s") and base.get("train_step_cpu_s"):
            entry["train_cpu_ms"] = 1000 * statistics.median(entry["train_step_cpu_s"])
            entry["train_cpu_ratio"] = entry["train_cpu_ms"] / (
                1000 * statistics.median(base["train_step_cpu_s"])
            )
            entry["cost_over_arithmetic_cpu"] = entry["train_cpu_ratio"] / entry["mac_ratio"]
            entry["meets_target_cpu"] = entry["cost_over_arithmetic_cpu"] <= target
    return results


def project_protocol(
    results,
    *,
    runs=16,
    epochs=10,
    train_images=45000,
    val_images=5000,
    test_images=10000,
    copies=1,
    packing_speedup=1.0,
):
    """Projected wall time of the study's protocol from measured throughputs.

    Per variant: ``runs * epochs`` epochs of ``train_images`` at the measured
    training images/s, plus a validation pass of ``val_images`` after each epoch
    and one test pass per run at the measured inference images/s. With packed
    training (``copies`` > 1), the training part is divided by the measured
    ``packing_speedup``. Input-pipeline and per-epoch overheads are not
    included (the fit check in the benchmark shows how small they are).

    Args:
        results: `run_benchmark`'s ``"results"`` (one setting per variant is used:
            the first seen).
        runs, epochs: int, default 16 and 10 (the study's).
        train_images, val_images, test_images: int, default CIFAR-10's split.
        copies: int, default 1; runs trained at once.
        packing_speedup: float, default 1.0; measured throughput gain of
            ``copies`` packed runs over one run (`keras_attn.parallel`).

    Returns:
        dict: ``{"per_variant_hours": {...}, "total_hours": float, "assumptions": str}``.

    Example:
    >>> rows = [{"model": "cnn", "train_images_per_s": 4500.0, "inference_images_per_s": 10000.0}]
    >>> round(project_protocol(rows)["total_hours"], 3)
    0.471
    """
    per_variant = {}
    for e in results:
        if e["model"] in per_variant:
            continue
        train = runs * epochs * train_images / e["train_images_per_s"] / packing_speedup
        infer = runs * (epochs * val_images + test_images) / e["inference_images_per_s"]
        per_variant[e["model"]] = (train + infer) / 3600
    return {
        "per_variant_hours": per_variant,
        "total_hours": sum(per_variant.values()),
        "assumptions": f"{runs} runs x {epochs} epochs x {train_images} training images, "
        f"validation on {val_images} per epoch, test on {test_images} per run; {copies} "
        f"run(s) at once (throughput x{packing_speedup:.2f}); no pipeline or epoch overhead",
    }


# --------------------------------------------------------------------------- output


def _fmt(value, spec):
    return (
        "-"
        if value is None or (isinstance(value, float) and math.isnan(value))
        else format(value, spec)
    )


def format_table(result):
    """The benchmark result as a plain-text table (one row per variant and setting).

    Example:
    >>> print(format_table(result))  # doctest: +SKIP
    """
    env = result["environment"]
    s = result["settings"]
    lines = [
        f"backend {env['backend']} | {env['device']} | batch {s['batch_size']} | "
        f"{s['windows']} windows x {s['steps_per_window']} steps | keras "
        f"{env['versions'].get('keras')} | oneDNN {env['TF_ENABLE_ONEDNN_OPTS']} | load "
        f"{_fmt((env.get('load_average_at_start') or [None])[0], '.1f')}->"
        f"{_fmt((env.get('load_average_at_end') or [None])[0], '.1f')}",
    ]
    header = (
        f"{'model':22} {'setting':10} {'MMACs/img':>9} {'MAC x':>6} {'train img/s':>11} "
        f"{'step ms':>8} {'step x':>6} {'cost/arith':>10} "
        f"{'<=' + str(s['target_cost_over_arithmetic']):>5} {'paired':>6} {'CPU-s':>6} "
        f"{'infer img/s':>11} {'infer x':>7} {'peak RSS MB':>11} {'+RSS MB':>7} {'dev MB':>6}"
    )
    lines += [header, "-" * len(header)]
    for e in result["results"]:
        lines.append(
            f"{e['model']:22} {e['setting']:10} {e['macs_per_image'] / 1e6:9.1f} "
            f"{e['mac_ratio']:6.2f} {e['train_images_per_s']:11.1f} {e['train_step_ms']:8.0f} "
            f"{e['train_step_ratio']:6.2f} {e['cost_over_arithmetic']:10.2f} "
            f"{'yes' if e['meets_target'] else 'NO':>5} "
            f"{e.get('cost_over_arithmetic_paired', float('nan')):6.2f} "
            f"{e.get('cost_over_arithmetic_cpu', float('nan')):6.2f} "
            f"{e['inference_images_per_s']:11.1f} "
            f"{e['inference_ratio']:7.2f} {e['peak_host_rss_mb']:11.0f} "
            f"{e['host_rss_growth_mb']:7.0f} {_fmt(e['peak_device_mb'], '6.0f')}"
        )
    speedups = [
        k
        for k in (result["results"][0] if result["results"] else {})
        if k.startswith("speedup_vs_")
    ]
    if speedups:
        key = speedups[0]
        lines.append("")
        lines.append(f"training {key.replace('_', ' ')}:")
        for e in result["results"]:
            lines.append(f"  {e['model']:22} {e['setting']:10} {e[key]:.2f}x")
    pipe = result.get("pipeline")
    if pipe:
        lines.append("")
        lines.append(
            f"input pipeline (ArrayBatches, batch {pipe['batch_size']}): "
            f"{pipe['images_per_s']:,.0f} images/s = {pipe['ratio_to_fastest_model']:.0f}x the "
            f"fastest training throughput ({pipe['fastest_model_train_images_per_s']:.1f} img/s); "
            f"target >= 10x: {'yes' if pipe['meets_10x'] else 'NO'}"
        )
    fit = result.get("fit_check")
    if fit:
        lines.append(
            f"model.fit on ArrayBatches ({BASELINE}, {fit['setting']}): "
            f"{fit['images_per_s']:.1f} img/s = {100 * fit['fit_over_bare_step']:.0f}% of "
            f"train_on_batch's {fit['train_on_batch_images_per_s']:.1f} img/s "
            f"({100 * fit['fit_over_bare_step_cpu']:.0f}% by CPU seconds per step)"
        )
    proj = result.get("protocol_projection")
    if proj:
        lines.append(
            f"projected protocol time at these speeds: {proj['total_hours']:.1f} h for "
            f"{len(proj['per_variant_hours'])} variant(s) ({proj['assumptions']})"
        )
    lines.append(
        "step x: median step time over cnn's; cost/arith: step x over MAC x; paired: the same "
        "from per-round ratios; CPU-s: the same from process CPU seconds per step (both robust "
        "to other load on the machine)"
    )
    lines.append(f"wall time {result['wall_seconds']:.0f}s")
    return "\n".join(lines)


def write_json(result, path):
    """Write ``result`` as JSON to ``path`` atomically (temporary file, then rename).

    Example:
    >>> write_json({"a": 1}, "/tmp/benchmark.json")  # doctest: +SKIP
    """
    path = os.fspath(path)
    folder = os.path.dirname(os.path.abspath(path))
    os.makedirs(folder, exist_ok=True)
    tmp = os.path.join(folder, f".{os.path.basename(path)}.{os.getpid()}.tmp")
    with open(tmp, "w") as f:
        json.dump(result, f, indent=1, default=str)
        f.write("\n")
    os.replace(tmp, path)


# --------------------------------------------------------------------------- command line


def _positive_int_arg(text):
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a positive integer, got {text!r}") from None
    if value < 1:
        raise argparse.ArgumentTypeError(f"expected a positive integer, got {text!r}")
    return value


def parse_args(argv=None):
    """Parse the benchmark's command line (no Keras import: the backend is not fixed yet).

    Example:
    >>> parse_args(["--models", "cnn,cnn_eca", "--backend", "jax", "--jit"]).jit
    True
    """
    p = argparse.ArgumentParser(
        prog="benchmark.py",
        description="Training and inference throughput, MACs and memory of keras_attn variants, "
        "measured side by side; prints a table and writes JSON.",
    )
    p.add_argument(
        "--models",
        default=None,
        help="comma-separated variants (default: all); cnn is always added as the baseline",
    )
    p.add_argument(
        "--backend",
        choices=("tensorflow", "jax", "torch"),
        default=None,
        help="Keras backend (default: KERAS_BACKEND or tensorflow); the benchmark "
        "re-runs itself in a subprocess when Keras is already loaded with another",
    )
    jit = p.add_mutually_exclusive_group()
    jit.add_argument(
        "--jit",
        dest="jit",
        action="store_true",
        default=None,
        help="jit-compile steps (XLA); default: the fast path for this backend",
    )
    jit.add_argument("--no-jit", dest="jit", action="store_false", help="do not jit-compile")
    jit.add_argument(
        "--compare-jit",
        action="store_true",
        help="measure without and with jit compilation side by side",
    )
    p.set_defaults(jit=None)
    p.add_argument("--eager", action="store_true", help="run eagerly (op by op)")
    p.add_argument(
        "--mixed-precision",
        choices=("mixed_bfloat16", "mixed_float16"),
        default=None,
        help="dtype policy to build the models under (default float32)",
    )
    p.add_argument(
        "--compare-mixed-precision",
        action="store_true",
        help="measure float32 and --mixed-precision (default mixed_bfloat16) side by side",
    )
    p.add_argument("--batch", type=_positive_int_arg, default=128, help="training batch (128)")
    p.add_argument(
        "--inference-batch",
        type=_positive_int_arg,
        default=None,
        help="inference batch (default: --batch)",
    )
    p.add_argument("--warmup", type=_positive_int_arg, default=2, help="warm-up steps (2)")
    p.add_argument("--windows", type=_positive_int_arg, default=5, help="timed windows (5)")
    p.add_argument("--steps", type=_positive_int_arg, default=3, help="steps per window (3)")
    p.add_argument(
        "--threads",
        type=_positive_int_arg,
        default=None,
        help="TensorFlow intra-op threads (default: TensorFlow's choice)",
    )
    p.add_argument(
        "--deterministic",
        action="store_true",
        help="enable TensorFlow op determinism, as the protocol does by default",
    )
    p.add_argument(
        "--copies",
        default=None,
        help="also time packed training of N copies of cnn (keras_attn.parallel), e.g. 1,2,4",
    )
    p.add_argument("--no-pipeline", action="store_true", help="skip the input-pipeline timing")
    p.add_argument("--no-fit-check", action="store_true", help="skip the model.fit epoch timing")
    p.add_argument(
        "--gates",
        action="store_true",
        help="instead of whole models, time each attention gate alone at each of its sites "
        "(one training step of a one-layer model), next to a 3x3 convolution of the same width",
    )
    p.add_argument(
        "--tiny",
        action="store_true",
        help="smoke-test configuration: cnn and cnn_eca, batch 4, one 1-step window",
    )
    p.add_argument(
        "--output",
        default="results/benchmark.json",
        help="JSON file to write (default results/benchmark.json)",
    )
    args = p.parse_args(argv)
    if args.tiny:
        args.models = args.models or "cnn,cnn_eca"
        args.batch, args.warmup, args.windows, args.steps = 4, 1, 1, 1
    if args.copies is not None:
        try:
            args.copies = [int(c) for c in args.copies.split(",") if c.strip()]
        except ValueError:
            p.error(f"--copies must be comma-separated positive integers, got {args.copies!r}")
        if not args.copies or min(args.copies) < 1:
            p.error(f"--copies must be comma-separated positive integers, got {args.copies!r}")
    return args


def _settings_from_args(args):
    policy = args.mixed_precision
    if args.compare_mixed_precision:
        policy = policy or "mixed_bfloat16"
        return [
            {"jit_compile": args.jit, "eager": args.eager, "mixed_precision": None},
            {"jit_compile": args.jit, "eager": args.eager, "mixed_precision": policy},
        ]
    if args.compare_jit:
        return [
            {"jit_compile": False, "eager": args.eager, "mixed_precision": policy},
            {"jit_compile": True, "eager": args.eager, "mixed_precision": policy},
        ]
    return [{"jit_compile": args.jit, "eager": args.eager, "mixed_precision": policy}]


def main(argv=None):
    """Command-line entry point; returns the exit status.

    Example:
    >>> main(["--tiny", "--output", "/tmp/bench.json"])  # doctest: +SKIP
    0
    """
    argv = list(sys.argv[1:] if argv is None else argv)
    args = parse_args(argv)
    if args.backend and "keras" not in sys.modules:
        os.environ["KERAS_BACKEND"] = args.backend
    import keras

    if args.backend and keras.backend.backend() != args.backend:
        # Keras is loaded with another backend: run in a fresh interpreter.
        env = dict(os.environ, KERAS_BACKEND=args.backend)
        cmd = [sys.executable, "-m", "keras_attn.benchmark", *argv]
        return subprocess.call(cmd, env=env)
    if keras.backend.backend() == "tensorflow":
        import tensorflow as tf

        # Every variant is a new model, so TensorFlow warns about "retracing" once per
        # variant: expected here, and noise in the benchmark's output.
        tf.get_logger().setLevel("ERROR")
    if args.threads or args.deterministic:
        if keras.backend.backend() != "tensorflow":
            raise SystemExit("--threads and --deterministic apply to the TensorFlow backend only.")
        import tensorflow as tf

        if args.threads:
            tf.config.threading.set_intra_op_parallelism_threads(args.threads)
        if args.deterministic:
            tf.config.experimental.enable_op_determinism()

    if args.gates:
        variants = GATE_VARIANTS if args.models is None else args.models.split(",")
        gates = benchmark_gates(
            [v for v in variants if v != BASELINE],
            batch_size=args.batch,
            warmup_steps=args.warmup,
            windows=args.windows,
            steps_per_window=args.steps,
            jit_compile=_settings_from_args(args)[0]["jit_compile"],
            progress=lambda line: print(line, flush=True),
        )
        gates["command"] = ["benchmark.py", *argv]
        write_json(gates, args.output)
        print(format_gates(gates))
        print(f"JSON written to {args.output}")
        return 0
    result = run_benchmark(
        args.models,
        batch_size=args.batch,
        settings=_settings_from_args(args),
        warmup_steps=args.warmup,
        windows=args.windows,
        steps_per_window=args.steps,
        inference_batch_size=args.inference_batch,
        pipeline=not args.no_pipeline,
        pipeline_images=512 if args.tiny else 45000,
        fit_check=not args.no_fit_check,
    )
    if args.copies:
        from keras_attn.parallel import benchmark_packing

        result["packing"] = benchmark_packing(
            copies=args.copies,
            batch_size=args.batch,
            warmup_steps=args.warmup,
            windows=args.windows,
            steps_per_window=args.steps,
            jit_compile=_settings_from_args(args)[0]["jit_compile"],
        )
        best = max(result["packing"]["rows"], key=lambda r: r["speedup"])
        result["protocol_projection_packed"] = project_protocol(
            result["results"], copies=best["copies"], packing_speedup=best["speedup"]
        )
    result["command"] = ["benchmark.py", *argv]
    write_json(result, args.output)
    print(format_table(result))
    if result.get("packing"):
        from keras_attn.parallel import format_packing

        print(format_packing(result["packing"]))
        proj = result["protocol_projection_packed"]
        print(
            f"projected protocol time with packing: {proj['total_hours']:.2f} h for "
            f"{len(proj['per_variant_hours'])} variant(s) ({proj['assumptions']}; the packing "
            "gain of cnn applied to every variant)"
        )
    print(f"JSON written to {args.output}")
    return 0


if __name__ == "__main__":
    sys.exit(main())


# --------------------------------------------------------------------------- gates alone

#: The variants whose gates `benchmark_gates` times, one per attention block.
GATE_VARIANTS = ("cnn_eca", "cnn_cbam", "cnn_conv_ae", "cnn_linear_ae")


def benchmark_gates(
    variants=GATE_VARIANTS,
    *,
    batch_size=128,
    warmup_steps=2,
    windows=5,
    steps_per_window=3,
    jit_compile=None,
    seed=0,
    progress=None,
):
    """Training-step time of each attention gate alone, at every site it has in its variant.

    Each site's gate is rebuilt from its config and wrapped in a small model
    (input of the site's shape, the gate, global average pooling, mean-squared
    error against zeros), next to a 3x3 convolution of the same width as a
    yardstick, and timed with ``train_on_batch`` (forward, backward to the
    layer's own weights, SGD update) like `run_benchmark` times whole models:
    the median of timed windows after warm-up, round-robin over the entries.
    Inside a network a gate also passes the gradient on to its input, which
    these steps skip, so they are a lower bound of what the gate adds to a
    training step; read them against the ``conv3x3`` rows.

    Args:
        variants: variant names whose ``site*`` layers are timed (default
            `GATE_VARIANTS`: ECA, CBAM, conv-AE, linear-AE).
        batch_size: int, default 128.
        warmup_steps, windows, steps_per_window: as for `run_benchmark`.
        jit_compile: bool or None (default: `fast_path`'s choice).
        seed: int, seeds the weights and the random inputs.
        progress: callable taking a line of text, or None.

    Returns:
        dict: ``settings`` and ``rows``, one per gate and per yardstick, each with
        ``name``, ``site_ms`` (``{site: median ms per step}``) and ``total_ms``.

    Example:
    >>> r = benchmark_gates(["cnn_eca"], batch_size=2, warmup_steps=1, windows=1,
    ...                     steps_per_window=1)
    >>> [row["name"] for row in r["rows"]]
    ['conv3x3', 'eca']
    >>> sorted(r["rows"][1]["site_ms"])
    ['site1', 'site2', 'site3', 'site4']
    """
    import keras
    import numpy as np

    import keras_attn

    for name, value in (
        ("batch_size", batch_size),
        ("windows", windows),
        ("steps_per_window", steps_per_window),
    ):
        check_positive_int(name, value)
    progress = progress or (lambda line: None)
    jit = fast_path()["jit_compile"] if jit_compile is None else bool(jit_compile)
    rng = np.random.default_rng(seed)
    entries = {}  # (row name, site) -> (model, x)

    def add(row, site, layer, shape):
        keras.utils.set_random_seed(seed)
        inputs = keras.Input(shape)
        outputs = keras.layers.GlobalAveragePooling2D()(layer(inputs))
        model = keras.Model(inputs, outputs, name=f"{row}_{site}")
        model.compile(optimizer=keras.optimizers.SGD(0.01), loss="mse", jit_compile=jit)
        x = rng.standard_normal((batch_size, *shape)).astype("float32")
        entries[row, site] = (model, x, np.zeros((batch_size, shape[-1]), "float32"))

    for variant in variants:
        full = keras_attn.build(variant)
        sites = [layer for layer in full.layers if layer.name.startswith("site")]
        if not sites:
            raise ValueError(f"Variant {variant!r} has no attention sites to time.")
        for layer in sites:
            site, kind = layer.name.split("_", 1)
            shape = tuple(layer.input.shape[1:])
            if ("conv3x3", site) not in entries or entries["conv3x3", site][1].shape[1:] != shape:
                conv = keras.layers.Conv2D(shape[-1], 3, padding="same")
                add("conv3x3", site, conv, shape)
            add(kind, site, type(layer).from_config(layer.get_config()), shape)
    progress(f"[gates] {len(entries)} models built (batch {batch_size}, jit {jit})")

    def step(model, x, y):
        return lambda: model.train_on_batch(x, y)

    for model, x, y in entries.values():
        for _ in range(warmup_steps):
            model.train_on_batch(x, y)
    times = {key: [] for key in entries}
    for w in range(windows):
        for key, entry in entries.items():
            times[key].append(_time_window(step(*entry), steps_per_window)[0])
        progress(f"[gates] window {w + 1}/{windows}")
    rows = {}
    for (row, site), values in times.items():
        rows.setdefault(row, {})[site] = statistics.median(values) * 1e3
    return {
        "settings": {
            "variants": list(variants),
            "batch_size": batch_size,
            "warmup_steps": warmup_steps,
            "windows": windows,
            "steps_per_window": steps_per_window,
            "jit_compile": jit,
        },
        "environment": environment(),
        "rows": [
            {"name": name, "site_ms": site_ms, "total_ms": sum(site_ms.values())}
            for name, site_ms in rows.items()
        ],
    }


def format_gates(result):
    """The table of `benchmark_gates`: ms per training step of each gate, per site.

    Example:
    >>> print(format_gates({"settings": {"batch_size": 2}, "rows": [
    ...     {"name": "eca", "site_ms": {"site1": 1.0}, "total_ms": 1.0}]}))
    gate alone (batch 2): ms per training step
    gate              site1    total
    eca                1.00     1.00
    """
    sites = sorted({s for row in result["rows"] for s in row["site_ms"]})
    lines = [
        f"gate alone (batch {result['settings']['batch_size']}): ms per training step",
        f"{'gate':14s}" + "".join(f"{s:>9s}" for s in sites) + f"{'total':>9s}",
    ]
    for row in result["rows"]:
        cells = "".join(f"{row['site_ms'].get(s, float('nan')):9.2f}" for s in sites)
        lines.append(f"{row['name']:14s}{cells}{row['total_ms']:9.2f}")
    return "\n".join(lines)
