"""`run_protocol`: every (model, run) of the protocol, or of one shard, into one folder."""

from __future__ import annotations

import time

from keras_attn import _files as files
from keras_attn.protocol import records
from keras_attn.protocol.budget import TimeBudget, parse_duration
from keras_attn.protocol.loop import Job, build_kwargs, ensure_runtime, group_training, train_group
from keras_attn.protocol.models import resolve_models
from keras_attn.protocol.plan import balanced_order, parse_shard, plan_groups, plan_tasks
from keras_attn.protocol.progress import eta_seconds, fmt_duration
from keras_attn.protocol.settings import run_seed
from keras_attn.protocol.training import resolve_training
from keras_attn.runtime import device_description

__all__ = ["run_protocol"]


def _load_data(settings, log):
    t0 = time.perf_counter()
    data = settings.data_settings().load()
    d = data.describe()
    log(
        f"data: {d['source']['kind']} {d['source']['location']}: "
        f"{d['counts']} ({time.perf_counter() - t0:.1f}s)"
    )
    return data


def _epochs_left(out_dir, sid, model, runs, epochs):
    """Epochs a group still has to train: fewer when it resumes from a checkpoint."""
    path = records.checkpoint_path(out_dir, sid, model, runs)
    if not files.exists(path):
        return epochs
    group, _ = records.load_checkpoint(path)
    return max(epochs - int(group.get("epochs_done", 0)), 1)


def _group_line(model, runs, seeds, pending, eta):
    positions = [pending.index((model, r)) + 1 for r in runs if (model, r) in pending]
    if len(runs) == 1:
        what, where = f"run {runs[0]} (seed {seeds[0]})", f"task {positions[0]}"
    else:
        what = f"runs {', '.join(map(str, runs))} together (seeds {', '.join(map(str, seeds))})"
        where = f"tasks {', '.join(map(str, positions))}"
    return f"=== {model} {what} | {where} of {len(pending)} | protocol ETA {fmt_duration(eta)}"


def run_protocol(
    models,
    settings,
    out_dir,
    *,
    data=None,
    shard=None,
    allow_mixed=False,
    log=print,
    progress_every=60.0,
    save_weights=True,
    time_budget=None,
    groups=None,
):
    """Run every (model, run) of the protocol, or of one shard, into ``out_dir``.

    Finished runs (records present) are skipped; an interrupted run resumes from
    its checkpoint. Prints which model and run, each epoch, and an ETA for the
    whole protocol (this shard) from the epoch times measured so far.

    Args:
        models: registry names, config dicts or config ``.json`` paths (list or
            comma-separated string); ``None``: the study's variants.
        settings: a `keras_attn.protocol.ProtocolSettings`.
        out_dir: output folder (local path or ``tf.io.gfile`` path such as ``gs://...``).
        data: a loaded `keras_attn.data.Dataset`; ``None`` loads ``settings.data``.
        shard: ``"I/N"`` (1-based) to run only every N-th task; ``None``: all.
        allow_mixed: allow an output folder that holds records of other settings.
        log: callable for progress lines (``print`` by default; ``None``: silent).
        progress_every: seconds between in-epoch progress lines (0: none).
        save_weights: save each run's best-validation weights (see `run_one`).
        time_budget: seconds from the call (data loading included), or a duration
            such as ``"8m"`` (see `keras_attn.protocol.parse_duration`), after which
            no new run or group is started: one starts only when its estimated time
            fits in what is left. A started run is never cut by the budget. Rerunning
            continues with the runs left. Under a budget the table fills
            balanced (`keras_attn.protocol.plan.balanced_order`): every model to
            half its runs, then to all; the study's variants before the others.
        groups: train only these ``(model, [runs])`` groups (as a launcher's job
            does); ``None``: every pending task, in groups of the trainer's group size.

    Returns:
        The records of this shard's finished tasks, in task order (fewer than
        the tasks when the time budget stopped it early).

    Example:
        >>> import tempfile, numpy as np
        >>> from keras_attn.data import save_npz
        >>> from keras_attn.protocol import ProtocolSettings
        >>> folder = tempfile.mkdtemp()
        >>> x = np.random.default_rng(0).integers(0, 256, (40, 32, 32, 3), dtype="uint8")
        >>> save_npz(folder + "/d.npz", x, np.arange(40) % 10, x[:8], np.arange(8) % 10)
        >>> settings = ProtocolSettings(runs=2, epochs=1, batch_size=8, data=folder + "/d.npz",
        ...                             val_size=8, model_overrides={"blocks": [4, 8],
        ...                             "dense_units": 8})
        >>> recs = run_protocol("cnn,cnn_eca", settings, folder + "/out", log=None)
        >>> [(r["model"], r["run"]) for r in recs]
        [('cnn', 0), ('cnn_eca', 0), ('cnn', 1), ('cnn_eca', 1)]
    """
    log = log or (lambda line: None)
    budget_seconds = parse_duration(time_budget)
    budget = TimeBudget(budget_seconds) if budget_seconds else None  # from now: data included
    specs = {s.name: s for s in resolve_models(models)}
    tasks = plan_tasks(list(specs.values()), settings.runs, shard)
    ensure_runtime(settings)
    data = _load_data(settings, log) if data is None else data
    if len(data.y_val) == 0:
        raise ValueError("The protocol needs validation images; got val_size=0.")
    fingerprint = data.fingerprint()
    sid = settings.settings_id(fingerprint)
    records.check_settings_folder(out_dir, settings, sid, fingerprint, allow_mixed)

    found = {
        t: files.read_json(records.record_path(out_dir, sid, *t))
        for t in tasks
        if files.exists(records.record_path(out_dir, sid, *t))
    }
    pending = [t for t in tasks if t not in found]
    i, n = parse_shard(shard)
    log(
        f"protocol: {len(tasks)} runs in this shard ({i}/{n}), {len(found)} already finished, "
        f"{len(pending)} to go; {settings.epochs} epochs each; settings id {sid}; output {out_dir}"
    )
    training = resolve_training(settings)
    if groups is None:  # a budget fills the table balanced (plan.balanced_order)
        key = balanced_order(settings.runs) if budget_seconds else None
        groups = plan_groups(pending, training["group_size"], out_dir, sid, key=key)
    why = f" (fast path: {training['fast_path_reason']})" if settings.jit_compile is None else ""
    log(
        f"training: {training['backend']} ({training['trainer']} trainer), jit "
        f"{'on' if training['jit_compile'] else 'off'}{why}, "
        f"{training['mixed_precision'] or 'float32'}, up to {training['group_size']} run(s) of a "
        f"model at once ({len(groups)} group(s)); precision {training['precision']}"
    )
    kwargs = build_kwargs(settings, data)
    if budget:
        from keras_attn.flops import count_macs

        budget.macs = lambda m: count_macs(specs[m].build(kwargs))
        existing = files.glob_paths(files.join(out_dir, "records", sid, "*", "run-*.json"))
        budget.add_records(
            [files.read_json(p) for p in existing],
            training["backend"],
            device_description(),
            training["trainer"],
        )

    times = {}  # model -> epoch seconds measured in this process
    remaining = {t: settings.epochs for t in pending}

    def on_epoch(model_name, run_index, epoch, seconds):
        times.setdefault(model_name, []).append(seconds)
        remaining[(model_name, run_index)] = settings.epochs - (epoch + 1)

    for model_name, runs in groups:
        epochs_left = _epochs_left(out_dir, sid, model_name, runs, settings.epochs)
        if budget:
            need, left = budget.estimate(model_name, len(runs), epochs_left), budget.left()
            if left <= 0 or (need is not None and need > left):
                n_left = sum(1 for t in pending if t not in found)
                log(
                    f"time budget: stopping before {model_name} runs {runs} (estimated "
                    f"{fmt_duration(need)}, {fmt_duration(max(left, 0))} left); {n_left} "
                    "run(s) left: rerun the same command to continue"
                )
                break
        group_t0 = time.perf_counter()
        seeds = [run_seed(settings.base_seed, r) for r in runs]
        log(_group_line(model_name, runs, seeds, pending, eta_seconds(remaining, times)))
        job_training = {**training, **group_training(runs)}
        job = Job(specs[model_name], settings, data, out_dir, sid, job_training, save_weights, log)
        recs = train_group(
            job,
            runs,
            on_epoch=on_epoch,
            eta=lambda: eta_seconds(remaining, times),
            progress_every=progress_every,
        )
        for run, rec in zip(runs, recs):
            remaining[(model_name, run)] = 0
            found[(model_name, run)] = rec
        if budget:
            budget.record(model_name, len(runs), epochs_left, time.perf_counter() - group_t0)
    return [found[t] for t in tasks if t in found]
