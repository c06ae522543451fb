"""The trainers side by side: the JAX trainer, ``model.fit`` and the packed model, per group size.

`benchmark_trainers` times whole training epochs of the protocol's trainers
(`keras_attn.protocol.jax_trainer.ScanTrainer`; ``model.fit`` on one model for a group
of one, on the packed model of `keras_attn.parallel` for more) on random uint8 images,
for each model, precision and group size, in one run. Each row gives images/s over
the group, effective TFLOP/s (6 x the forward MACs of `keras_attn.flops` per training
image: forward, and backward twice), the fraction of the device's peak where
`PEAK_TFLOPS` knows the device, and the projected GPU time of the whole study at
that speed (`project_study`).
"""

from __future__ import annotations

import statistics
import sys
import time
import types

import numpy as np

__all__ = ["PEAK_TFLOPS", "benchmark_trainers", "format_trainers", "peak_tflops", "project_study"]

#: Dense peak TFLOP/s by device and arithmetic (vendor figures, no sparsity).
PEAK_TFLOPS = {
    "H200": {"bf16": 989.0, "tf32": 494.0, "float32": 67.0},
    "H100": {"bf16": 989.0, "tf32": 494.0, "float32": 67.0},
    "A100": {"bf16": 312.0, "tf32": 156.0, "float32": 19.5},
}


def peak_tflops(device, precision, backend="jax"):
    """The device's peak TFLOP/s for ``precision``, or ``None`` for an unknown device.

    ``precision=None`` (the default) is TF32 under JAX on these GPUs.

    Example:
        >>> peak_tflops("GPU: gpu:NVIDIA H200", "bf16"), peak_tflops("CPU: AMD EPYC", "bf16")
        (989.0, None)
    """
    name = next((k for k in PEAK_TFLOPS if k in str(device)), None)
    if name is None:
        return None
    key = precision or ("tf32" if backend == "jax" else "float32")
    return PEAK_TFLOPS[name][key]


def project_study(images_per_s, macs, measured, runs=16, epochs=10, images=(45000, 5000, 10000)):
    """Hours the study takes when every model trains at ``measured``'s speed per MAC.

    A model's speed is ``images_per_s`` scaled by the MAC ratio to ``measured``; a
    validation or test image counts a third of a training image (forward only).

    Args:
        images_per_s: training images/s of the measured model (over a group).
        macs: ``{model: forward MACs per image}`` of every model of the study.
        measured: the model ``images_per_s`` was measured on.
        runs, epochs: per model (the study: 16, 10).
        images: train, validation and test images (CIFAR-10: 45,000 / 5,000 / 10,000).

    Example:
        >>> round(project_study(100000.0, {"cnn": 1.0, "cnn_x": 2.0}, "cnn"), 3)
        0.063
    """
    train, val, test = images
    per_run = epochs * train + (epochs * val + test) / 3
    seconds = sum(runs * per_run * m / macs[measured] / images_per_s for m in macs.values())
    return seconds / 3600


def _job(model, settings, x, y, trainer):
    from keras_attn.protocol.loop import Job
    from keras_attn.protocol.models import resolve_models
    from keras_attn.protocol.settings import resolve_training

    data = types.SimpleNamespace(
        x_train=x, y_train=y, input_shape=x.shape[1:], num_classes=int(y.max()) + 1
    )
    training = {**resolve_training(settings), "trainer": trainer}
    spec = resolve_models([model])[0]
    return Job(spec, settings, data, "", "", training, False, lambda line: None)


def _time_epochs(trainer, epochs):
    times = []
    for e in range(epochs + 1):  # the first epoch compiles: untimed
        trainer.set_epoch(e)
        t0 = time.perf_counter()
        trainer.fit_epoch([])
        times.append(time.perf_counter() - t0)
    return times[0], times[1:]


def benchmark_trainers(
    models=("cnn",),
    *,
    groups=(1, 4, 8, 16),
    precisions=(None,),
    trainers=("jax", "fit"),
    images=2048,
    batch_size=128,
    epochs=2,
    overrides=None,
    study_macs=None,
    seed=0,
    progress=None,
):
    """Epoch speed of each trainer, model, precision and group size, in one run.

    Args:
        models: variant names (default ``("cnn",)``).
        groups: group sizes (runs trained at once).
        precisions: `keras_attn.precision` settings (``None``: the backend's default).
        trainers: ``"jax"`` (`ScanTrainer`) and ``"fit"`` (``model.fit``, the packed
            model for groups above one).
        images: random training images per run and epoch.
        batch_size: images per step and run.
        epochs: timed epochs after the compiling one (median reported).
        overrides: config overrides for the models (as for `keras_attn.build`).
        study_macs: ``{model: MACs}`` of the study's models for the projection
            (default: the models measured).
        seed: seeds the images and the runs (run ``i``: ``seed + i``).
        progress: callable taking one line (default: print to stderr).

    Returns:
        dict with ``environment`` and ``rows``: per (trainer, model, precision,
        group), ``epoch_s``, ``compile_epoch_s``, ``images_per_s``,
        ``tflops``, ``fraction_of_peak`` (or None) and ``study_hours``.

    Example (a small network, so it runs in seconds):
        >>> small = {"input_shape": [8, 8, 3], "blocks": [4], "dense_units": 8}
        >>> result = benchmark_trainers(groups=(2,), trainers=("fit",), images=16,
        ...                             batch_size=8, epochs=1, overrides=small,
        ...                             progress=lambda line: None)
        >>> [(r["trainer"], r["group"]) for r in result["rows"]]
        [('fit (packed)', 2)]
    """
    import keras

    from keras_attn import zoo
    from keras_attn.benchmark.probes import environment
    from keras_attn.flops import count_macs
    from keras_attn.protocol.fit_trainers import make_trainer
    from keras_attn.protocol.loop import ensure_runtime
    from keras_attn.protocol.settings import ProtocolSettings

    progress = progress or (lambda line: print(line, file=sys.stderr, flush=True))
    overrides = dict(overrides or {})
    shape = tuple(overrides.pop("input_shape", (32, 32, 3)))
    rng = np.random.default_rng(seed)
    x = rng.integers(0, 256, (images, *shape), dtype=np.uint8)
    y = rng.integers(0, 10, images).astype(np.int64)
    y[:10] = np.arange(10)  # every class present
    build = {"input_shape": list(shape), "num_classes": 10, **overrides}
    macs = {m: count_macs(zoo.build(m, **build)) for m in models}
    study_macs = study_macs or macs
    env = environment()
    rows = []
    for precision in precisions:
        for model in models:
            for trainer in trainers:
                if trainer == "jax" and keras.backend.backend() != "jax":
                    continue
                for n in groups:
                    settings = ProtocolSettings(
                        batch_size=batch_size,
                        model_overrides=overrides,
                        precision=precision,
                        trainer=trainer,
                    )
                    ensure_runtime(settings)
                    job = _job(model, settings, x, y, trainer)
                    t = make_trainer(job, list(range(n)), [seed + i for i in range(n)])
                    first, times = _time_epochs(t, epochs)
                    epoch_s = statistics.median(times)
                    ips = n * images / epoch_s
                    tflops = 6 * macs[model] * ips / 1e12
                    peak = peak_tflops(env["device"], precision, env["backend"])
                    row = {
                        "trainer": trainer if trainer == "jax" or n == 1 else "fit (packed)",
                        "model": model,
                        "precision": precision or "default",
                        "group": n,
                        "compile_epoch_s": first,
                        "epoch_s": epoch_s,
                        "images_per_s": ips,
                        "tflops": tflops,
                        "fraction_of_peak": tflops / peak if peak else None,
                        "study_hours": project_study(ips, study_macs, model)
                        if model in study_macs
                        else None,
                    }
                    rows.append(row)
                    progress(format_trainers({"rows": [row]}, header=False))
                    del t
    return {
        "format": 1,
        "environment": env,
        "settings": {
            "images": images,
            "batch_size": batch_size,
            "epochs": epochs,
            "overrides": overrides,
            "input_shape": list(shape),
            "flops_per_training_image": "6 x forward MACs (keras_attn.flops)",
        },
        "rows": rows,
    }


def format_trainers(result, header=True):
    """A plain-text table of `benchmark_trainers`' rows.

    Example:
        >>> print(format_trainers({"rows": [{"trainer": "jax", "model": "cnn",
        ...     "precision": "bf16", "group": 16, "compile_epoch_s": 3.0, "epoch_s": 1.0,
        ...     "images_per_s": 2e5, "tflops": 94.6, "fraction_of_peak": 0.0956,
        ...     "study_hours": 0.1}]}))
        trainer      model         precision group  img/s    TFLOP/s peak   compile s study h
        jax          cnn           bf16         16   200000     94.6  9.6%      3.0   0.100
    """
    lines = []
    if header:
        lines.append(
            f"{'trainer':<12} {'model':<13} {'precision':<9} {'group':>5} {'img/s':>8} "
            f"{'TFLOP/s':>8} {'peak':>5} {'compile s':>9} {'study h':>7}"
        )
    for r in result["rows"]:
        frac = r["fraction_of_peak"]
        hours = r["study_hours"]
        lines.append(
            f"{r['trainer']:<12} {r['model']:<13} {r['precision']:<9} {r['group']:>5} "
            f"{r['images_per_s']:8.0f} {r['tflops']:8.1f} "
            f"{'n/a' if frac is None else f'{100 * frac:.1f}%':>5} {r['compile_epoch_s']:8.1f} "
            f"{'n/a' if hours is None else f'{hours:.3f}':>7}"
        )
    return "\n".join(lines)
