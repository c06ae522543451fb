"""The packing benchmark: N runs of one model trained at once (`keras_attn.parallel`) vs one."""

from __future__ import annotations

import statistics
import sys
import time

import numpy as np

from keras_attn._checks import check_positive_int
from keras_attn.benchmark.probes import device_peak_mb, environment
from keras_attn.benchmark.timing import time_window
from keras_attn.parallel import build_copies, compile_packed, pack_models

__all__ = ["benchmark_packing", "format_packing"]


def benchmark_packing(
    model="cnn",
    copies=(1, 2, 4),
    *,
    batch_size=128,
    warmup_steps=2,
    windows=5,
    steps_per_window=3,
    jit_compile=None,
    seed=0,
    overrides=None,
    progress=None,
):
    """Training throughput of N packed copies versus one, measured side by side.

    Args:
        model: variant name, default ``"cnn"``.
        copies: the numbers of copies to time, default ``(1, 2, 4)``.
        batch_size: images per step and copy, default 128.
        warmup_steps, windows, steps_per_window: as in
            `keras_attn.benchmark.run_benchmark`.
        jit_compile: bool or None (default: the fast path).
        seed: int, default 0; copy ``i`` is seeded ``seed + i``.
        overrides: dict of config overrides for the model (as for
            `keras_attn.build`), default none.
        progress: callable taking a line of text (default: print to stderr).

    Returns:
        dict with ``rows``: per N, ``step_ms``, ``images_per_s`` (all copies),
        ``speedup`` (N copies' throughput over N single runs' one after the
        other) and ``cpu_speedup`` (the same from process CPU seconds).

    Example (a small network, so it runs in a second):
    >>> small = {"input_shape": (8, 8, 3), "blocks": [4], "dense_units": 8}
    >>> result = benchmark_packing(copies=(2,), batch_size=2, warmup_steps=1, windows=1,
    ...                            steps_per_window=1, overrides=small,
    ...                            progress=lambda line: None)
    >>> [row["copies"] for row in result["rows"]], result["rows"][0]["speedup"]
    ([1, 2], 1.0)
    """
    if progress is None:

        def progress(line):
            print(line, file=sys.stderr, flush=True)

    for name, value in (
        ("batch_size", batch_size),
        ("windows", windows),
        ("steps_per_window", steps_per_window),
    ):
        check_positive_int(name, value)
    copies = [int(c) for c in copies]
    if not copies or min(copies) < 1:
        raise ValueError(f"`copies` must be positive integers, got {copies!r}.")
    copies = sorted(set(copies) | {1})
    rng = np.random.default_rng(seed)
    entries = []
    for n in copies:
        packed = compile_packed(
            pack_models(build_copies(model, [seed + i for i in range(n)], **(overrides or {}))),
            jit_compile=jit_compile,
        )
        shape = tuple(packed.inputs[0].shape[1:])
        xs = [rng.integers(0, 256, (batch_size, *shape)).astype("float32") for _ in range(n)]
        classes = int(packed.outputs[0].shape[-1])
        ys = [rng.integers(0, classes, batch_size) for _ in range(n)]
        t0 = time.perf_counter()
        for _ in range(warmup_steps):
            packed.train_on_batch(xs, ys)
        # Peak device memory so far (None on a CPU): copies are warmed up in increasing
        # order, so each peak is that of the largest group yet, this one.
        peak = device_peak_mb()
        progress(
            f"[packing] {n} x {model}: warm-up {time.perf_counter() - t0:.1f}s"
            + (f", peak device memory {peak:.0f} MiB" if peak is not None else "")
        )
        entries.append(
            {
                "copies": n,
                "packed": packed,
                "xs": xs,
                "ys": ys,
                "times": [],
                "cpu": [],
                "peak_device_mb": peak,
            }
        )
    for e in entries:  # seeding retraced the functions of earlier models: untimed step
        e["packed"].train_on_batch(e["xs"], e["ys"])
    for w in range(windows):
        order = entries[w % len(entries) :] + entries[: w % len(entries)]
        for e in order:
            wall, cpu = time_window(
                lambda e=e: e["packed"].train_on_batch(e["xs"], e["ys"]), steps_per_window
            )
            e["times"].append(wall)
            e["cpu"].append(cpu)
        progress(
            f"[packing] window {w + 1}/{windows}: "
            + ", ".join(f"{e['copies']}x {1000 * e['times'][-1]:.0f}ms" for e in entries)
        )
    rows = []
    reference = next(e for e in entries if e["copies"] == 1)
    single = statistics.median(reference["times"])
    single_cpu = statistics.median(reference["cpu"])
    for e in entries:
        step = statistics.median(e["times"])
        rows.append(
            {
                "copies": e["copies"],
                "step_ms": 1000 * step,
                "step_s": e["times"],
                "step_cpu_s": e["cpu"],
                "images_per_s": e["copies"] * batch_size / step,
                "speedup": e["copies"] * single / step,
                "cpu_speedup": e["copies"] * single_cpu / statistics.median(e["cpu"]),
                "peak_device_mb": e["peak_device_mb"],
            }
        )
    env = environment()
    return {
        "model": model,
        "batch_size_per_copy": batch_size,
        "jit_compile": entries[0]["packed"].jit_compile,
        "windows": windows,
        "steps_per_window": steps_per_window,
        "device": env["device"],
        "backend": env["backend"],
        "rows": rows,
    }


def format_packing(result):
    """A plain-text table of `benchmark_packing`'s result.

    Example:
    >>> print(format_packing({"model": "cnn", "backend": "jax", "device": "CPU",
    ...     "batch_size_per_copy": 128, "jit_compile": True, "rows": [
    ...     {"copies": 1, "step_ms": 100.0, "images_per_s": 1280.0, "speedup": 1.0,
    ...      "cpu_speedup": 1.0, "peak_device_mb": None}]}))
    packed training of cnn (jax, CPU, batch 128 per copy, jit True):
    copies   step ms  img/s (all)  speedup vs sequential  (CPU-s)  peak device MiB
         1     100.0       1280.0                  1.00x    1.00x              n/a
    """
    lines = [
        f"packed training of {result['model']} ({result['backend']}, {result['device']}, "
        f"batch {result['batch_size_per_copy']} per copy, jit {result['jit_compile']}):",
        f"{'copies':>6} {'step ms':>9} {'img/s (all)':>12} {'speedup vs sequential':>22} "
        f"{'(CPU-s)':>8} {'peak device MiB':>16}",
    ]
    for r in result["rows"]:
        peak = r.get("peak_device_mb")
        lines.append(
            f"{r['copies']:>6} {r['step_ms']:9.1f} {r['images_per_s']:12.1f} "
            f"{r['speedup']:21.2f}x {r.get('cpu_speedup', float('nan')):7.2f}x "
            f"{'n/a' if peak is None else f'{peak:.0f}':>16}"
        )
    return "\n".join(lines)
