"""Run the protocol's pending groups as jobs: a SLURM job array, or local processes (submitit)."""

from __future__ import annotations

import os
import signal

from keras_attn import _files as files
from keras_attn.protocol import records
from keras_attn.protocol.loop import ensure_runtime
from keras_attn.protocol.models import resolve_models
from keras_attn.protocol.plan import plan_groups, plan_tasks
from keras_attn.protocol.preemption import deferred_exit
from keras_attn.protocol.training import fast_path, resolve_training

__all__ = ["LAUNCHERS", "launch"]

#: What `launch` submits to: SLURM through submitit, or submitit's local processes.
LAUNCHERS = ("slurm", "local")


def _submitit():
    try:
        import submitit
    except ImportError:
        raise ImportError(
            "The SLURM and local launchers need submitit: pip install submitit "
            '(or pip install "keras_attn[slurm]").'
        ) from None
    return submitit


def _preemption_signals():
    """The signal submitit checkpoints and requeues a job on (``SUBMITIT_PREEMPT_SIGNAL``)."""
    name = "SIG" + os.environ.get("SUBMITIT_PREEMPT_SIGNAL", "USR2")
    return [getattr(signal, name)] if hasattr(signal, name) else []


class GroupJob:
    """One job of a launch: train one group of the protocol into the shared output folder.

    Preempted or timed out, submitit calls `checkpoint` and requeues the same
    call at once; the job stops after its next epoch checkpoint
    (`keras_attn.protocol.preemption`), and the requeued call resumes the group
    from there.
    """

    def __init__(self, models, settings, out_dir, save_weights, allow_mixed):
        self.models, self.settings, self.out_dir = models, settings, out_dir
        self.save_weights, self.allow_mixed = save_weights, allow_mixed

    def __call__(self, group):
        from keras_attn.protocol.run import run_protocol

        model, runs = group
        signals = _preemption_signals()

        def log(line):
            print(line, flush=True)  # the job's log file

        with deferred_exit(signals):
            names = ", ".join(signal.Signals(s).name for s in signals)
            log(f"job: {names or 'no signal'} stops this job after its next checkpoint")
            recs = run_protocol(
                self.models,
                self.settings,
                self.out_dir,
                allow_mixed=self.allow_mixed,
                log=log,
                save_weights=self.save_weights,
                groups=[(model, list(runs))],
            )
        mine = {(model, run) for run in runs}
        return [(r["model"], r["run"]) for r in recs if (r["model"], r["run"]) in mine]

    def checkpoint(self, *args, **kwargs):
        """Requeue the same call (submitit calls this on preemption or time-out)."""
        return _submitit().helpers.DelayedSubmission(self, *args, **kwargs)


def pending_groups(
    models, settings, out_dir, *, data=None, shard=None, allow_mixed=False, group_size=None
):
    """The groups a launch would submit: pending ``(model, [runs])``, at most ``group_size``
    each.

    Loads the data (the settings id depends on its fingerprint) to see which
    runs already have records.
    """
    specs = resolve_models(models)
    tasks = plan_tasks(specs, settings.runs, shard)
    data = settings.data_settings().load() if data is None else data
    fingerprint = data.fingerprint()
    sid = settings.settings_id(fingerprint)
    records.check_settings_folder(out_dir, settings, sid, fingerprint, allow_mixed)
    pending = [t for t in tasks if not files.exists(records.record_path(out_dir, sid, *t))]
    return plan_groups(pending, group_size or 1, out_dir, sid)


def launch(
    models,
    settings,
    out_dir,
    *,
    launcher="slurm",
    folder=None,
    shard=None,
    allow_mixed=False,
    save_weights=True,
    wait=True,
    data=None,
    partition=None,
    gpus_per_job=0,
    cpus_per_job=None,
    job_minutes=None,
    parallelism=None,
    log=print,
):
    """Submit the protocol's pending runs as a job array, one job per group of runs.

    Every job writes into the one shared ``out_dir`` (records are one file per
    run, so jobs never touch the same file). A preempted or timed-out job is
    requeued by submitit and resumes its group from the last finished epoch.
    Rerunning `launch` submits only what is still pending.

    Args:
        models, settings, out_dir, shard, allow_mixed, save_weights, data: as
            for `keras_attn.protocol.run_protocol`.
        launcher: ``"slurm"`` (sbatch through submitit) or ``"local"`` (the same
            path as local processes: for testing, and for machines without SLURM).
        folder: submitit's folder for job scripts and logs (default
            ``OUT/submitit``; must be shared between nodes for SLURM).
        partition, gpus_per_job, cpus_per_job, job_minutes, parallelism: SLURM's
            ``--partition``, ``--gpus-per-node``, ``--cpus-per-task``, ``--time``
            (minutes) and the array's ``%`` limit; only what is given is set.
        wait: wait for every job and return the runs they finished; ``False``
            returns the submitted jobs at once.
        log: callable for progress lines.

    Returns:
        With ``wait``: the ``(model, run)`` pairs the jobs finished. Without:
        the list of submitit jobs.

    Example:
        >>> launch("cnn", None, "out", launcher="pbs")  # doctest: +ELLIPSIS
        Traceback (most recent call last):
        ...
        ValueError: Unknown launcher 'pbs'. Valid launchers: slurm, local.
    """
    from keras_attn._checks import did_you_mean

    log = log or (lambda line: None)
    if launcher not in LAUNCHERS:
        raise ValueError(
            f"Unknown launcher {launcher!r}.{did_you_mean(launcher, LAUNCHERS)} Valid launchers: "
            f"{', '.join(LAUNCHERS)}."
        )
    submitit = _submitit()
    ensure_runtime(settings)
    training = resolve_training(settings)
    size = training["group_size"]
    if training["trainer"] == "jax" and settings.group_size is None and gpus_per_job:
        size = fast_path(accelerator=True)["group_size"]  # for the jobs' devices, not this host's
    groups = pending_groups(
        models, settings, out_dir, data=data, shard=shard, allow_mixed=allow_mixed, group_size=size
    )
    if not groups:
        log(f"launch: nothing pending in {out_dir}")
        return []
    folder = folder or os.path.join(str(out_dir), "submitit")
    if launcher == "local":
        executor = submitit.LocalExecutor(folder=folder)
        params = {"timeout_min": job_minutes or 24 * 60}
    else:
        executor = submitit.AutoExecutor(folder=folder, cluster="slurm")
        params = {"name": "keras_attn-protocol"}
        for key, value in (
            ("slurm_partition", partition),
            ("gpus_per_node", gpus_per_job or None),
            ("cpus_per_task", cpus_per_job),
            ("timeout_min", job_minutes),
            ("slurm_array_parallelism", parallelism),
        ):
            if value is not None:
                params[key] = value
    executor.update_parameters(**params)
    specs = resolve_models(models)
    job = GroupJob(specs, settings, str(out_dir), save_weights, allow_mixed)
    jobs = executor.map_array(job, [(m, list(runs)) for m, runs in groups])
    log(
        f"launch: {len(jobs)} job(s) submitted ({launcher}), one per group of up to {size} "
        f"run(s); logs in {folder}; job ids {', '.join(str(j.job_id) for j in jobs)}"
    )
    if not wait:
        return jobs
    finished = []
    for j, (model, runs) in zip(jobs, groups):
        finished += [tuple(t) for t in j.result()]
        log(f"launch: job {j.job_id} ({model} runs {runs}) done")
    return finished
