"""The trainers side by side: the JAX trainer in each of its forms, and ``model.fit``.

`benchmark_trainers` times whole training epochs of the protocol's trainers on random
uint8 images: the JAX trainer (`keras_attn.protocol.jax_trainer`) per group size,
gradient form, epoch form and precision, and ``model.fit`` on one run. Each row gives
images/s over the group, effective TFLOP/s (6 x the forward MACs of `keras_attn.flops`
per training image: forward, and backward twice), the fraction of the device's peak
where `PEAK_TFLOPS` knows the device, the seconds spent compiling, the seconds a
checkpoint takes, the kinds of convolution the compiled step calls (`conv_kinds`), and
the projected time of the whole study at that speed (`project_study`).

Rows are printed and appended to a JSON Lines file the moment they are measured, and a
deadline stops the run before a row that would not fit, so a run cut short keeps what
it measured (the preflight of a GPU lease, docs/performance.md).
"""

from __future__ import annotations

import json
import os
import statistics
import tempfile
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


def _job(model, settings, x, y, runs):
    from keras_attn.protocol.loop import Job, group_training
    from keras_attn.protocol.models import resolve_models
    from keras_attn.protocol.training import resolve_training

    data = types.SimpleNamespace(
        x_train=x, y_train=y, input_shape=x.shape[1:], num_classes=int(y.max()) + 1
    )
    training = {**resolve_training(settings), **group_training(runs)}
    spec = resolve_models([model])[0]
    return Job(spec, settings, data, "", "", training, False, lambda line: None)


def _checkpoint_seconds(trainer):
    """Seconds to take the group's checkpoint and write it as the protocol does, and its bytes."""
    from keras_attn.protocol import records

    with tempfile.TemporaryDirectory() as folder:
        path = os.path.join(folder, "group.npz")
        t0 = time.perf_counter()
        records.save_checkpoint_values(path, *trainer.checkpoint(), {"epochs_done": 0})
        return time.perf_counter() - t0, os.path.getsize(path)


def _measure(trainer, epochs):
    from keras_attn.protocol.jax_program import conv_kinds

    program = getattr(trainer, "program", None)  # shared by groups: count this row's compiling
    compiled_before = sum(program.compile_seconds.values()) if program is not None else 0.0
    times = []
    for e in range(epochs + 1):  # the first epoch compiles: reported apart
        trainer.set_epoch(e)
        t0 = time.perf_counter()
        trainer.fit_epoch([])
        times.append(time.perf_counter() - t0)
    row = {"first_epoch_s": times[0], "epoch_s": statistics.median(times[1:])}
    if program is not None:
        row["compile_s"] = sum(program.compile_seconds.values()) - compiled_before
        main = "step_scan" if program.epoch_form == "scan" else "step"
        row["conv_kinds"] = conv_kinds(program.text(main))
    else:
        row["compile_s"], row["conv_kinds"] = None, None
    row["checkpoint_s"], row["checkpoint_bytes"] = _checkpoint_seconds(trainer)
    return row


def _cases(models, trainers, groups, grad_forms, epoch_forms, precisions, backend):
    for precision in precisions:
        for model in models:
            for trainer in trainers:
                if trainer == "fit":
                    yield precision, model, trainer, 1, None, None
                    continue
                if backend != "jax":
                    continue
                for n in groups:
                    for grad_form in grad_forms:
                        for epoch_form in epoch_forms:
                            yield precision, model, trainer, n, grad_form, epoch_form


def benchmark_trainers(
    models=("cnn",),
    *,
    groups=(1, 16),
    grad_forms=(None,),
    epoch_forms=(None,),
    precisions=(None,),
    trainers=("jax", "fit"),
    images=2048,
    batch_size=128,
    epochs=2,
    overrides=None,
    study_macs=None,
    seed=0,
    progress=None,
    jsonl=None,
    deadline=None,
    settings=None,
):
    """Epoch speed of each trainer and form, model, precision and group size, in one run.

    Args:
        models: variant names (default ``("cnn",)``).
        groups: JAX trainer group sizes (runs trained at once); ``model.fit`` trains one.
        grad_forms, epoch_forms: the JAX trainer's forms
            (`keras_attn.protocol.settings.GRAD_FORMS`, ``EPOCH_FORMS``; ``None``:
            the device's default).
        precisions: `keras_attn.protocol.precision` settings (``None``: the backend's default).
        trainers: ``"jax"`` (the JAX trainer, JAX backend only) and ``"fit"``.
        images: random training images per run and epoch.
        batch_size: images per step and run.
        epochs: timed epochs after the first (compiling) one; the median is reported.
        overrides: config overrides for the models (as for `keras_attn.build`).
        study_macs: ``{model: MACs}`` of the study's models for the projection
            (default: the models measured).
        seed: seeds the images and the runs (run ``i``: ``seed + i``).
        progress: callable taking one line (default: print to stdout).
        jsonl: a path; each row is appended to it as one JSON line when measured.
        deadline: seconds from the call; no row is started after it, or when the
            longest row so far says it would end after it.
        settings: `keras_attn.protocol.ProtocolSettings` overrides for every row (a
            recipe's augmentation, say); recorded with the result.

    Returns:
        dict with ``environment``, ``settings``, ``rows`` and ``skipped`` (rows the
        deadline left out).

    Example (a small network, so it runs in seconds):
        >>> small = {"input_shape": [8, 8, 3], "blocks": [4], "dense_units": 8}
        >>> result = benchmark_trainers(groups=(2,), trainers=("fit",), images=16,
        ...                             batch_size=8, epochs=1, overrides=small,
        ...                             progress=lambda line: None)
        >>> [(r["trainer"], r["group"]) for r in result["rows"]]
        [('fit', 1)]
    """
    import keras

    from keras_attn import zoo
    from keras_attn.benchmark.probes import benchmark_environment
    from keras_attn.flops import count_macs
    from keras_attn.protocol.fit_trainer import make_trainer
    from keras_attn.protocol.loop import ensure_runtime
    from keras_attn.protocol.settings import ProtocolSettings

    start = time.monotonic()
    progress = progress or (lambda line: print(line, flush=True))
    overrides = dict(overrides or {})
    shape = tuple(overrides.pop("input_shape", (32, 32, 3)))
    rng = np.random.default_rng(seed)
    x = rng.integers(0, 256, (images, *shape), dtype=np.uint8)
    y = rng.integers(0, 10, images).astype(np.int64)
    y[:10] = np.arange(10)  # every class present
    build = {"input_shape": list(shape), "num_classes": 10, **overrides}
    macs = {m: count_macs(zoo.build(m, **build)) for m in models}
    study_macs = study_macs or macs
    env = benchmark_environment()
    cases = list(
        _cases(models, trainers, groups, grad_forms, epoch_forms, precisions, env["backend"])
    )
    rows, longest = [], 0.0
    for k, (precision, model, trainer, n, grad_form, epoch_form) in enumerate(cases):
        elapsed = time.monotonic() - start
        if deadline is not None and (elapsed >= deadline or elapsed + longest > deadline):
            progress(f"deadline: {len(cases) - k} row(s) left out after {elapsed:.0f}s")
            return _result(
                env, images, batch_size, epochs, overrides, shape, rows, cases[k:], settings
            )
        t_row = time.monotonic()
        run_settings = ProtocolSettings(
            **{
                **(settings or {}),
                "batch_size": batch_size,
                "model_overrides": overrides,
                "precision": precision,
                "trainer": trainer,
                "grad_form": grad_form,
                "epoch_form": epoch_form,
            }
        )
        ensure_runtime(run_settings)
        runs = list(range(n))
        t = make_trainer(_job(model, run_settings, x, y, runs), runs, [seed + i for i in runs])
        measured = _measure(t, epochs)
        forms = {k: v for k, v in t.training.items() if k in ("grad_form", "epoch_form")}
        del t
        ips = n * images / measured["epoch_s"]
        tflops = 6 * macs[model] * ips / 1e12
        peak = peak_tflops(env["device"], precision, env["backend"])
        row = {
            "trainer": trainer,
            "model": model,
            "precision": precision or "default",
            "group": n,
            "grad_form": forms.get("grad_form"),
            "epoch_form": forms.get("epoch_form"),
            **measured,
            "images_per_s": ips,
            "tflops": tflops,
            "fraction_of_peak": tflops / peak if peak else None,
            "study_hours": project_study(ips, study_macs, model) if model in study_macs else None,
            "device": env["device"],
        }
        rows.append(row)
        longest = max(longest, time.monotonic() - t_row)
        progress(format_trainers({"rows": [row]}, header=not k))
        if jsonl:
            _append_line(jsonl, row)
    keras.backend.clear_session()
    return _result(env, images, batch_size, epochs, overrides, shape, rows, [], settings)


def _append_line(path, row):
    with open(path, "a") as f:
        f.write(json.dumps(row, default=str) + "\n")
        f.flush()
        os.fsync(f.fileno())


def _result(env, images, batch_size, epochs, overrides, shape, rows, skipped, settings):
    return {
        "format": 2,
        "environment": env,
        "settings": {
            "images": images,
            "batch_size": batch_size,
            "epochs": epochs,
            "overrides": overrides,
            "input_shape": list(shape),
            "flops_per_training_image": "6 x forward MACs (keras_attn.flops)",
            "protocol_settings": settings or {},
        },
        "rows": rows,
        "skipped": [
            dict(zip(("precision", "model", "trainer", "group", "grad_form", "epoch_form"), c))
            for c in skipped
        ],
    }


def format_trainers(result, header=True):
    """A plain-text table of `benchmark_trainers`' rows.

    Example:
        >>> print(format_trainers({"rows": [{"trainer": "jax", "model": "cnn",
        ...     "precision": "bf16", "group": 16, "grad_form": "summed", "epoch_form": "scan",
        ...     "compile_s": 3.0, "epoch_s": 1.0, "images_per_s": 2e5, "tflops": 94.6,
        ...     "fraction_of_peak": 0.0956, "checkpoint_s": 0.5, "study_hours": 0.1,
        ...     "conv_kinds": {"__cudnn$convForward": 5}}]}))
        trainer model         precision group grad     epoch    img/s  TFLOP/s  peak compile s ckpt s study h convolutions
        jax     cnn           bf16         16 summed   scan    200000     94.6  9.6%       3.0    0.5   0.100 __cudnn$convForward 5
    """  # noqa: E501
    lines = []
    if header:
        lines.append(
            f"{'trainer':<7} {'model':<13} {'precision':<9} {'group':>5} {'grad':<8} "
            f"{'epoch':<5} {'img/s':>8} {'TFLOP/s':>8} {'peak':>5} {'compile s':>9} "
            f"{'ckpt s':>6} {'study h':>7} convolutions"
        )
    for r in result["rows"]:
        frac, hours, comp = r["fraction_of_peak"], r["study_hours"], r["compile_s"]
        kinds = ", ".join(f"{k} {v}" for k, v in (r.get("conv_kinds") or {}).items())
        lines.append(
            f"{r['trainer']:<7} {r['model']:<13} {r['precision']:<9} {r['group']:>5} "
            f"{r.get('grad_form') or '-':<8} {r.get('epoch_form') or '-':<5} "
            f"{r['images_per_s']:8.0f} {r['tflops']:8.1f} "
            f"{'n/a' if frac is None else f'{100 * frac:.1f}%':>5} "
            f"{'n/a' if comp is None else f'{comp:.1f}':>9} {r['checkpoint_s']:6.1f} "
            f"{'n/a' if hours is None else f'{hours:.3f}':>7} {kinds or '-'}"
        )
    return "\n".join(lines)
