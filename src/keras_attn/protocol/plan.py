"""What a protocol (or one shard of it) trains, and in which groups."""

from __future__ import annotations

import os

from keras_attn import _files as files
from keras_attn._checks import check_int
from keras_attn.protocol import records

__all__ = [
    "balanced_order",
    "parse_shard",
    "plan_groups",
    "plan_tasks",
    "shard_from_environment",
]


def parse_shard(spec):
    """Parse a shard spec ``"I/N"`` (1-based: ``"1/2"`` and ``"2/2"``) into ``(I, N)``.

    Args:
        spec: ``"I/N"`` with ``1 <= I <= N``, or a tuple ``(I, N)``, or ``None``
            for ``(1, 1)`` (everything).

    Example:
        >>> parse_shard("2/3")
        (2, 3)
    """
    if spec is None:
        return (1, 1)
    try:
        if isinstance(spec, str):
            i_text, n_text = spec.split("/")
            i, n = int(i_text), int(n_text)
        else:
            i, n = spec
            if isinstance(i, bool) or isinstance(n, bool):
                raise TypeError
            i, n = int(i), int(n)
    except (TypeError, ValueError):
        raise ValueError(
            f"Shard spec must look like 'I/N' with 1 <= I <= N (e.g. '1/2'), got {spec!r}."
        ) from None
    if n < 1 or not 1 <= i <= n:
        raise ValueError(
            f"Shard spec {spec!r} is out of range: need 1 <= I <= N (shards are "
            f"numbered from 1, e.g. '1/{max(n, 2)}' .. '{max(n, 2)}/{max(n, 2)}')."
        )
    return (i, n)


#: The environment variables `shard_from_environment` reads, by scheduler.
SHARD_VARIABLES = {
    "SLURM job array": (
        "SLURM_ARRAY_TASK_ID",
        "SLURM_ARRAY_TASK_COUNT",
        "SLURM_ARRAY_TASK_MIN",
        "SLURM_ARRAY_TASK_MAX",
    ),
    "Kubernetes Indexed Job": ("JOB_COMPLETION_INDEX", "JOB_COMPLETIONS"),
}


def _int_var(env, name):
    value = env.get(name)
    try:
        return None if value is None else int(value)
    except ValueError:
        raise ValueError(f"--shard auto: {name}={value!r} is not an integer.") from None


def shard_from_environment(environ=None):
    """This process's shard ``(I, N)`` from a job array's environment, and where it came from.

    - SLURM job arrays (``sbatch --array=0-7``): ``SLURM_ARRAY_TASK_ID`` and
      ``SLURM_ARRAY_TASK_COUNT`` (with ``SLURM_ARRAY_TASK_MIN`` / ``_MAX``); the
      array must be contiguous (no ``:step``).
    - Kubernetes Indexed Jobs: ``JOB_COMPLETION_INDEX`` (set by Kubernetes) and
      ``JOB_COMPLETIONS``, which the manifest sets to the Job's ``completions``
      (Kubernetes does not pass it; see ``examples/kubernetes/``).

    Args:
        environ: a mapping (default ``os.environ``).

    Returns:
        ``((I, N), description)`` with ``1 <= I <= N`` (as `parse_shard`).

    Raises:
        ValueError: no scheduler's variables, both schedulers', or a set that
            does not add up (an index outside the array, a stepped array), named
            in the message.

    Example:
        >>> shard_from_environment({"SLURM_ARRAY_TASK_ID": "2", "SLURM_ARRAY_TASK_COUNT": "4",
        ...                         "SLURM_ARRAY_TASK_MIN": "0", "SLURM_ARRAY_TASK_MAX": "3"})[0]
        (3, 4)
        >>> shard_from_environment({"JOB_COMPLETION_INDEX": "0", "JOB_COMPLETIONS": "2"})[0]
        (1, 2)
    """
    env = os.environ if environ is None else environ
    found = [s for s, names in SHARD_VARIABLES.items() if names[0] in env]
    if not found:
        wanted = "; ".join(f"{s}: {', '.join(n)}" for s, n in SHARD_VARIABLES.items())
        raise ValueError(
            "--shard auto found no job-array variables in the environment ("
            f"{wanted}). Run it inside a SLURM array or a Kubernetes Indexed Job, or give "
            "--shard I/N."
        )
    if len(found) > 1:
        raise ValueError(
            f"--shard auto found the variables of both a {found[0]} and a {found[1]}; "
            "unset one, or give --shard I/N."
        )
    if found[0] == "SLURM job array":
        task = _int_var(env, "SLURM_ARRAY_TASK_ID")
        count = _int_var(env, "SLURM_ARRAY_TASK_COUNT")
        low = _int_var(env, "SLURM_ARRAY_TASK_MIN")
        high = _int_var(env, "SLURM_ARRAY_TASK_MAX")
        low = 0 if low is None else low
        if count is None:
            if high is None:
                raise ValueError(
                    "--shard auto: SLURM_ARRAY_TASK_ID is set but neither "
                    "SLURM_ARRAY_TASK_COUNT nor SLURM_ARRAY_TASK_MAX is."
                )
            count = high - low + 1
        if high is not None and high - low + 1 != count:
            raise ValueError(
                f"--shard auto: SLURM_ARRAY_TASK_COUNT={count} but the array runs from "
                f"{low} to {high}: use a contiguous array (--array={low}-{low + count - 1}), "
                "without a step."
            )
        index = task - low
        where = (
            f"SLURM_ARRAY_TASK_ID={task} of SLURM_ARRAY_TASK_COUNT={count} "
            f"(SLURM_ARRAY_TASK_MIN={low})"
        )
    else:
        index = _int_var(env, "JOB_COMPLETION_INDEX")
        count = _int_var(env, "JOB_COMPLETIONS")
        if count is None:
            raise ValueError(
                "--shard auto: JOB_COMPLETION_INDEX is set but JOB_COMPLETIONS is not: set it "
                "in the Job's container env to the Job's spec.completions."
            )
        where = f"JOB_COMPLETION_INDEX={index} of JOB_COMPLETIONS={count}"
    if count < 1 or not 0 <= index < count:
        raise ValueError(f"--shard auto: {where} is out of range (index must be 0..count-1).")
    return (index + 1, count), where


def plan_tasks(models, runs, shard=None):
    """The (model, run) pairs of a protocol, or of one shard of it.

    Tasks are ordered run by run (run 0 of every model, then run 1, ...), so a
    protocol stopped early has results for every model. Shard ``I/N`` takes every
    N-th task starting at the I-th; the N shards together hold each task once.

    Args:
        models: as for `keras_attn.protocol.models.resolve_models` (names, configs,
            config files; ``None``: the study's variants).
        runs: runs per model (>= 1).
        shard: ``"I/N"`` or ``(I, N)`` or ``None``.

    Example:
        >>> plan_tasks(["cnn", "cnn_eca"], 2, "1/2")
        [('cnn', 0), ('cnn', 1)]
    """
    from keras_attn.protocol.models import resolve_models  # the zoo: Keras

    names = [spec.name for spec in resolve_models(models)]
    runs = check_int("runs", runs, 1)
    i, n = parse_shard(shard)
    tasks = [(m, r) for r in range(runs) for m in names]
    return tasks[i - 1 :: n]


def balanced_order(runs, study=None):
    """The order a time budget fills the table in: a key for `plan_groups`.

    Every model to half its runs first (8 of the study's 16), then to all of them;
    within each stage the study's variants before the others (the ablations). So an
    interrupted lease leaves the table balanced. A group never spans two stages.

    Args:
        runs: runs per model (``settings.runs``).
        study: the models that come first in each stage (default: the study's
            variants, `keras_attn.zoo.STUDY_VARIANTS`).

    Returns:
        A function of a ``(model, run)`` task: ``(stage, not a study variant)``.

    Example:
        >>> key = balanced_order(16)
        >>> key(("cnn", 3)), key(("cnn", 8)), key(("cnn_conv_ae_const", 3))
        ((0, False), (1, False), (0, True))
    """
    from keras_attn import zoo

    runs = check_int("runs", runs, 1)
    stages = sorted({max(runs // 2, 1), runs})
    first = set(zoo.STUDY_VARIANTS if study is None else study)

    def key(task):
        model, run = task
        stage = next((i for i, end in enumerate(stages) if run < end), len(stages))
        return (stage, model not in first)

    return key


def plan_groups(pending, group_size, out_dir, sid, key=None):
    """The pending ``(model, run)`` tasks as ``(model, [runs])`` groups of at most ``group_size``.

    Interrupted work resumes as it was started: a run or group with a
    checkpoint resumes as it was (when every unfinished run of it is pending
    here). Other runs of a model are grouped in task order. Groups come in the
    order of their first task; with ``key`` (a function of a task, such as
    `balanced_order`'s) groups hold tasks of one key only, and come in key order first.

    Example:
        >>> plan_groups([("cnn", 0), ("cnn_eca", 0), ("cnn", 1)], 2, "/nowhere", "ab12")
        [('cnn', [0, 1]), ('cnn_eca', [0])]
        >>> plan_groups([("cnn", r) for r in range(4)], 4, "/nowhere", "ab12",
        ...             key=balanced_order(4))
        [('cnn', [0, 1]), ('cnn', [2, 3])]
    """
    key = key or (lambda task: 0)
    pending_set = set(pending)
    position = {t: i for i, t in enumerate(pending)}
    taken, groups = set(), []
    for model in dict.fromkeys(m for m, _ in pending):
        for runs, path in sorted(records.checkpoints(out_dir, sid, model).items()):
            todo = [r for r in runs if (model, r) in pending_set]
            if not todo:
                if all(files.exists(records.record_path(out_dir, sid, model, r)) for r in runs):
                    files.remove(path)  # finished: left over from a kill after the records
                continue
            members = {(model, r) for r in runs}
            unfinished = {
                (model, r)
                for r in runs
                if not files.exists(records.record_path(out_dir, sid, model, r))
            }
            if unfinished <= pending_set and not taken & members:
                groups.append((model, list(runs)))
                taken |= members
        rest = [r for m, r in pending if m == model and (m, r) not in taken]
        for k in dict.fromkeys(key((model, r)) for r in rest):
            part = [r for r in rest if key((model, r)) == k]
            size = group_size
            groups += [(model, part[i : i + size]) for i in range(0, len(part), size)]

    def order(group):
        tasks = [(group[0], r) for r in group[1] if (group[0], r) in position]
        return min(key(t) for t in tasks), min(position[t] for t in tasks)

    return sorted(groups, key=order)
