"""The variant benchmark: training and inference speed of whole models, side by side."""

from __future__ import annotations

import os
import statistics
import sys
import time

from keras_attn._checks import check_positive_int
from keras_attn.benchmark.pipeline import benchmark_pipeline, time_fit
from keras_attn.benchmark.probes import (
    MB,
    RssSampler,
    benchmark_environment,
    device_peak_mb,
    reset_device_peak,
)
from keras_attn.benchmark.ratios import BASELINE, DEFAULT_TARGET, add_ratios, project_protocol
from keras_attn.benchmark.specs import model_specs, setting_specs
from keras_attn.benchmark.timing import sync, time_window
from keras_attn.protocol.training import compile_for_training

__all__ = ["run_benchmark"]


class _RandomBatches:
    """Random images of each model's input shape (the same arrays for every model)."""

    def __init__(self, seed, batch_size, inference_batch_size):
        import numpy as np

        self.rng = np.random.default_rng(seed)
        self.sizes = batch_size, inference_batch_size
        self.arrays = {}

    def __call__(self, model):
        shape = tuple(model.inputs[0].shape[1:])
        classes = int(model.outputs[0].shape[-1])
        if (shape, classes) not in self.arrays:
            train, infer = self.sizes
            self.arrays[shape, classes] = (
                self.rng.integers(0, 256, (train, *shape)).astype("float32"),
                self.rng.integers(0, classes, train),
                self.rng.integers(0, 256, (infer, *shape)).astype("float32"),
            )
        return self.arrays[shape, classes]


def _warm_up(name, build_fn, config, *, seed, sampler, data, baseline_macs, warmup_steps):
    """Build and compile one (variant, setting), run its warm-up steps; its result entry."""
    import keras

    import keras_attn
    from keras_attn.flops import mac_summary

    keras.utils.set_random_seed(seed)
    sampler.take_peak()
    before = sampler.rss()
    previous_policy = keras.config.dtype_policy()
    keras.config.set_dtype_policy(config["mixed_precision"] or "float32")
    try:
        model = build_fn()
    finally:
        keras.config.set_dtype_policy(previous_policy)
    summary = mac_summary(model, baseline=baseline_macs)
    compile_for_training(model, jit_compile=config["jit_compile"], run_eagerly=config["eager"])
    x, y, x_infer = data(model)
    reset_device_peak()
    t0 = time.perf_counter()
    for _ in range(warmup_steps):
        model.train_on_batch(x, y)
    t_train = time.perf_counter() - t0
    t0 = time.perf_counter()
    for _ in range(warmup_steps):
        sync(model.predict_on_batch(x_infer))
    t_infer = time.perf_counter() - t0
    peak = sampler.take_peak()
    return {
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
        "host_rss_growth_mb": (peak - before) / MB,
        "peak_host_rss_mb": peak / MB,
        "peak_device_mb": device_peak_mb(),
        "train_step_s": [],
        "train_step_cpu_s": [],
        "inference_batch_s": [],
        "inference_batch_cpu_s": [],
        "_model": model,
    }


def _time_round(entries, w, steps, sampler, data):
    """Window ``w`` of every entry, starting one entry further on than window ``w - 1``."""
    order = entries[w % len(entries) :] + entries[: w % len(entries)]
    for entry in order:
        model = entry["_model"]
        x, y, x_infer = data(model)
        sampler.take_peak()
        reset_device_peak()
        wall, cpu = time_window(lambda m=model, x=x, y=y: m.train_on_batch(x, y), steps)
        entry["train_step_s"].append(wall)
        entry["train_step_cpu_s"].append(cpu)
        wall, cpu = time_window(lambda m=model, x=x_infer: m.predict_on_batch(x), steps)
        entry["inference_batch_s"].append(wall)
        entry["inference_batch_cpu_s"].append(cpu)
        entry["peak_host_rss_mb"] = max(entry["peak_host_rss_mb"], sampler.take_peak() / MB)
        device_peak = device_peak_mb()
        if device_peak is not None:
            entry["peak_device_mb"] = max(entry["peak_device_mb"] or 0.0, device_peak)


def _figures(entries, configs, batch_size, inference_batch_size, target):
    """Medians, images/s, ratios to the baseline and, across settings, speed-ups."""
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
    add_ratios(entries, target)
    if len(configs) > 1:
        first = configs[0]["label"]
        for entry in entries:
            ref = next(e for e in entries if e["model"] == entry["model"] and e["setting"] == first)
            entry[f"speedup_vs_{first}"] = ref["train_step_ms"] / entry["train_step_ms"]
    return entries


def _compare_input(results, pipe, fit):
    """Add to ``pipe`` and ``fit`` how they compare with the measured training speed."""
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


def _end_of_run(env):
    """Record the load average and the process' peak RSS in ``env``, at the end of the run."""
    load = os.getloadavg() if hasattr(os, "getloadavg") else None
    env["load_average_at_end"] = list(load) if load else None
    try:
        import resource

        env["process_max_rss_mb"] = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    except (ImportError, OSError):  # pragma: no cover - not on Windows
        pass


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

    Each variant is built, compiled the way the protocol trains
    (`keras_attn.protocol.training.compile_for_training`) and timed on random images:
    training steps (``train_on_batch``) and inference (``predict_on_batch``).
    After the warm-up, timed windows go round-robin over the variants, so a
    change in machine load hits every variant alike; a variant's figure is the
    median of its windows. Its step time over the baseline's (``cnn``, always
    measured in the same run) is divided by its MAC ratio (`keras_attn.flops`):
    ``cost_over_arithmetic`` near 1 means attention costs what its arithmetic
    costs. Memory: the peak resident set size while each variant was built and
    timed (later variants' peaks include earlier models), its growth while the
    variant was built (its own share), and the device's peak where there is one.

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
        ``pipeline`` and ``fit_check`` (or None), ``protocol_projection``,
        ``wall_seconds``.

    Example (a small network standing in for ``cnn``, so it runs in a second):
    >>> import keras_attn
    >>> small = lambda: keras_attn.build("cnn", input_shape=(8, 8, 3), blocks=[4], dense_units=8)
    >>> result = run_benchmark([("cnn", small)], batch_size=2, warmup_steps=1, windows=1,
    ...                        steps_per_window=1, pipeline=False, fit_check=False,
    ...                        progress=lambda line: None)
    >>> row = result["results"][0]
    >>> row["model"], row["train_step_ratio"], row["train_images_per_s"] > 0
    ('cnn', 1.0, True)
    """
    import keras

    from keras_attn.flops import count_macs

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

    specs = model_specs(models)
    names = list(specs)
    configs = setting_specs(settings, jit_compile, mixed_precision, run_eagerly)
    started = time.perf_counter()
    env = benchmark_environment()
    progress(
        f"[benchmark] {env['backend']} on {env['device']}; {len(names)} variants x "
        f"{len(configs)} setting(s) ({', '.join(c['label'] for c in configs)}), batch {batch_size}"
    )
    data = _RandomBatches(seed, batch_size, inference_batch_size)
    baseline = specs[BASELINE]()
    baseline_macs, input_shape = count_macs(baseline), tuple(baseline.inputs[0].shape[1:])
    del baseline
    sampler = RssSampler()
    sampler.start()
    entries = []
    previous_policy = keras.config.dtype_policy()
    try:
        for config in configs:
            for name in names:
                entry = _warm_up(
                    name,
                    specs[name],
                    config,
                    seed=seed,
                    sampler=sampler,
                    data=data,
                    baseline_macs=baseline_macs,
                    warmup_steps=warmup_steps,
                )
                entries.append(entry)
                warm = entry["warmup_seconds"]
                progress(
                    f"[benchmark] {name} ({config['label']}): built, "
                    f"{entry['macs_per_image'] / 1e6:.1f}M MACs/image, warm-up "
                    f"{warm['train']:.1f}s train + {warm['inference']:.1f}s inference"
                )
        # Seeding before each build (tf.random.set_seed) makes TensorFlow retrace the
        # functions of the models built before: one more untimed step each, now.
        for entry in entries:
            x, y, x_infer = data(entry["_model"])
            entry["_model"].train_on_batch(x, y)
            sync(entry["_model"].predict_on_batch(x_infer))
        for w in range(windows):
            _time_round(entries, w, steps_per_window, sampler, data)
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
            fit = time_fit(base["_model"], batch_size, windows * steps_per_window, input_shape)
            fit["setting"] = base["setting"]
        pipe = None
        if pipeline:
            progress("[benchmark] input pipeline: ArrayBatches")
            pipe = benchmark_pipeline(batch_size, images=pipeline_images, input_shape=input_shape)
    finally:
        sampler.stop()
        keras.config.set_dtype_policy(previous_policy)

    results = _figures(entries, configs, batch_size, inference_batch_size, target)
    _compare_input(results, pipe, fit)
    _end_of_run(env)
    return {
        "format": 1,
        "settings": {
            "models": names,
            "baseline": BASELINE,
            "batch_size": batch_size,
            "inference_batch_size": inference_batch_size,
            "settings": [dict(c) for c in configs],
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
        "protocol_projection": project_protocol(results),
        "wall_seconds": time.perf_counter() - started,
    }
