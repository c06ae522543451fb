"""The variant benchmark's result as a plain-text table, and as a JSON file."""

from __future__ import annotations

import json
import math
import os

from keras_attn import _files
from keras_attn.benchmark.ratios import BASELINE

__all__ = ["format_table", "write_benchmark"]


def _fmt(value, spec):
    return (
        "-"
        if value is None or (isinstance(value, float) and math.isnan(value))
        else format(value, spec)
    )


def format_table(result):
    """The benchmark result as a plain-text table (one row per variant and setting).

    Example (a small network standing in for ``cnn``):
    >>> import keras_attn
    >>> from keras_attn.benchmark import run_benchmark
    >>> small = lambda: keras_attn.build("cnn", input_shape=(8, 8, 3), blocks=[4], dense_units=8)
    >>> result = run_benchmark([("cnn", small)], batch_size=2, warmup_steps=1, windows=1,
    ...                        steps_per_window=1, pipeline=False, fit_check=False,
    ...                        progress=lambda line: None)
    >>> print(format_table(result))
    backend ... | batch 2 | 1 windows x 1 steps | ...
    model                  setting    MMACs/img  MAC x train img/s ...
    ...
    cnn ...
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


def write_benchmark(result, path):
    """Write a benchmark result to ``path`` as indented JSON, atomically.

    Values JSON cannot hold are written as their ``str``. The folder is
    created; a killed process leaves the old file or the new one.

    Args:
        result: dict, e.g. `run_benchmark`'s.
        path: str or path-like, a local or ``tf.io.gfile`` path.

    Example:
    >>> import os, tempfile
    >>> path = os.path.join(tempfile.mkdtemp(), "out", "bench.json")
    >>> write_benchmark({"a": 1}, path)
    >>> open(path).read().splitlines()
    ['{', ' "a": 1', '}']
    """
    path = os.fspath(path)
    if not _files.remote(path):
        path = os.path.abspath(path)
    _files.write_json(path, json.loads(json.dumps(result, default=str)), indent=1)
