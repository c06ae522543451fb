"""The gate benchmark: each attention gate alone, at each of its sites, next to a 3x3 conv."""

from __future__ import annotations

import statistics

from keras_attn._checks import check_positive_int
from keras_attn.benchmark.probes import benchmark_environment
from keras_attn.benchmark.timing import time_window
from keras_attn.protocol.training import fast_path

__all__ = ["GATE_VARIANTS", "benchmark_gates", "format_gates"]

#: What `benchmark_gates` times by default, one entry per attention block: the study's
#: variants, then the gates from the literature by name (at every site of ``cnn``).
GATE_VARIANTS = (
    "cnn_eca",
    "cnn_cbam",
    "cnn_conv_ae",
    "cnn_linear_ae",
    "se",
    "gc",
    "coord",
    "simam",
)


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
        variants: variant names whose ``site*`` layers are timed, or gate
            names (`keras_attn.layers.list_gates`), timed at every site of
            ``cnn`` (default `GATE_VARIANTS`: ECA, CBAM, conv-AE, linear-AE, SE,
            GC, coordinate attention, SimAM).
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
    >>> r = benchmark_gates(["simam"], batch_size=2, warmup_steps=1, windows=1,
    ...                     steps_per_window=1)
    >>> [row["name"] for row in r["rows"]]
    ['conv3x3', 'simam']
    """
    import keras
    import numpy as np

    import keras_attn
    from keras_attn.layers.registry import GATES

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
        is_gate = variant in GATES and variant not in keras_attn.list_models()
        full = (
            keras_attn.build("cnn", attention=[variant]) if is_gate else keras_attn.build(variant)
        )
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
            times[key].append(time_window(step(*entry), steps_per_window)[0])
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
        "environment": benchmark_environment(),
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
