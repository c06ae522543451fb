"""`run_leaderboard`: the grid's runs through the protocol, filled evenly, resumable, shardable.

Each setting is a protocol output folder of its own, ``OUT/<backbone>-<data>-<recipe>/``,
so settings never mix. The runs go in rounds: round ``k`` trains the next group
of runs (one run on a CPU) of every model of every setting, so every (setting, model)
has ``k`` groups before any has ``k + 1``. A rerun skips finished runs and resumes an
interrupted one from its checkpoint (`keras_attn.protocol.run_protocol` does both).
"""

from __future__ import annotations

import dataclasses
import json
import math
import time

from keras_attn import _files as files
from keras_attn.protocol import (
    load_protocol_data,
    parse_duration,
    parse_shard,
    resolve_models,
    resolve_training,
    run_protocol,
    shard_from_environment,
)
from keras_attn.protocol.records import record_path
from keras_attn.runtime import configure_runtime

__all__ = ["plan_rounds", "run_leaderboard"]


@dataclasses.dataclass
class _Prepared:
    """A setting with its loaded data, models, settings id, folder and group size."""

    setting: object
    data: object
    specs: list
    sid: str
    folder: str
    group_size: int


def plan_rounds(runs, group_sizes, models, shard=None):
    """The order the leaderboard trains in: ``(round, setting, model, runs)`` groups.

    Round ``k`` holds runs ``k * size`` to ``(k + 1) * size - 1`` of every model of
    every setting (``size``: the setting's group size), settings in grid order. Shard
    ``I/N`` takes every N-th group.

    Args:
        runs: runs per model.
        group_sizes: runs trained in one group, per setting (a list, one per setting).
        models: the model names of each setting (a list of lists).
        shard: ``"I/N"`` or ``None`` (every group).

    Example:
    >>> plan_rounds(2, [1, 1], [["cnn", "cnn_se"], ["resnet20"]])
    [(0, 0, 'cnn', [0]), (0, 0, 'cnn_se', [0]), (0, 1, 'resnet20', [0]), (1, 0, 'cnn', [1]), \
(1, 0, 'cnn_se', [1]), (1, 1, 'resnet20', [1])]
    """
    i, n = parse_shard(shard)
    rounds = max(math.ceil(runs / c) for c in group_sizes)
    groups = []
    for k in range(rounds):
        for s, (c, names) in enumerate(zip(group_sizes, models, strict=True)):
            part = list(range(k * c, min((k + 1) * c, runs)))
            groups += [(k, s, name, part) for name in names if part]
    return groups[i - 1 :: n]


def _data_key(settings):
    return json.dumps(dataclasses.asdict(settings.data_settings()), sort_keys=True, default=str)


def _prepare(grid, out_dir, log):
    first = grid[0].settings
    configure_runtime(first.threads, first.deterministic)  # before the data touches a backend
    loaded, out = {}, []
    for setting in grid:
        s = setting.settings
        key = _data_key(s)
        if key not in loaded:
            t0 = time.perf_counter()
            try:
                loaded[key] = load_protocol_data(s)
            except FileNotFoundError as e:
                raise FileNotFoundError(
                    f"Data set {setting.data!r}: {e} (keras-attn leaderboard: --set "
                    f"download=true, or --data-dir {setting.data}=PATH)"
                ) from None
            log(f"data {setting.data}: {s.data} ({time.perf_counter() - t0:.1f}s)")
        data = loaded[key]
        specs = resolve_models(setting.models())
        build = {
            "input_shape": list(data.input_shape),
            "num_classes": data.num_classes,
            **s.model_overrides,
        }
        for spec in specs:
            try:
                spec.config(build)
            except ValueError as e:
                raise ValueError(f"{spec.name} on {setting.data}: {e}") from None
        sid = s.settings_id(data.fingerprint())
        group_size = resolve_training(s)["group_size"]
        folder = files.join(str(out_dir), setting.name)
        out.append(_Prepared(setting, data, specs, sid, folder, group_size))
    return out


def _finished(p, model, runs):
    return all(files.exists(record_path(p.folder, p.sid, model, r)) for r in runs)


def run_leaderboard(
    grid,
    out_dir,
    *,
    shard=None,
    time_budget=None,
    log=print,
    progress_every=60.0,
    save_weights=False,
):
    """Train the grid's runs through the protocol, each setting into its own folder.

    Args:
        grid: the settings (`keras_attn.leaderboard.expand_grid`).
        out_dir: the leaderboard's folder (local or ``tf.io.gfile`` path); setting
            ``S`` writes the protocol folder ``out_dir/S.name``.
        shard: ``"I/N"``: train every N-th group of `plan_rounds` (shards may share
            ``out_dir``); ``"auto"``: this SLURM array task's or Kubernetes Indexed
            Job pod's (`keras_attn.protocol.shard_from_environment`); ``None``: all.
        time_budget: seconds or a duration (``"8m"``, ``"2h"``): start no group
            that would not finish in what is left (the protocol's estimate), and
            stop there, so the grid stays even; rerun to continue.
        log: callable for progress lines (``None``: silent).
        progress_every: seconds between in-epoch progress lines (0: none).
        save_weights: keep each run's best weights (the report needs none).

    Returns:
        ``{setting name: [records]}``: this shard's finished runs per setting.

    Example:
    >>> import tempfile, numpy as np
    >>> from keras_attn.data import save_npz
    >>> from keras_attn.leaderboard import expand_grid
    >>> folder = tempfile.mkdtemp()
    >>> x = np.random.default_rng(0).integers(0, 256, (24, 12, 12, 3), dtype="uint8")
    >>> save_npz(folder + "/d.npz", x, np.arange(24) % 3, x[:6], np.arange(6) % 3)
    >>> grid = expand_grid("se", "cnn", "tiny", runs=1, data_dirs={"tiny": folder + "/d.npz"},
    ...                    settings={"epochs": 1, "batch_size": 8, "val_size": 6,
    ...                              "model_overrides": {"blocks": [4, 8], "dense_units": 8}})
    >>> done = run_leaderboard(grid, folder + "/out", shard="1/2", log=None)  # cnn_se: shard 2/2
    >>> [(r["model"], r["run"]) for r in done["cnn-tiny-study"]]
    [('cnn', 0)]
    """
    log = log or (lambda line: None)
    t0 = time.monotonic()
    budget = parse_duration(time_budget)
    if shard == "auto":
        (i, n), where = shard_from_environment()
        shard = f"{i}/{n}"
        log(f"shard {shard} from {where}")
    parse_shard(shard)  # bad specs fail before any data loads
    if not grid:
        raise ValueError("The grid is empty: give at least one backbone, data set and recipe.")
    runs = {s.settings.runs for s in grid}
    if len(runs) != 1:
        raise ValueError(f"Every setting of a leaderboard has the same runs, got {sorted(runs)}.")
    prepared = _prepare(grid, out_dir, log)
    plan = plan_rounds(
        runs.pop(),
        [p.group_size for p in prepared],
        [[m.name for m in p.specs] for p in prepared],
        shard,
    )
    pending = [g for g in plan if not _finished(prepared[g[1]], g[2], g[3])]
    log(
        f"leaderboard: {len(prepared)} setting(s), {len(plan)} group(s) in this shard "
        f"({'/'.join(map(str, parse_shard(shard)))}), {len(plan) - len(pending)} finished, "
        f"{len(pending)} to go; output {out_dir}"
    )
    rounds = sorted({k for k, *_ in pending})
    stopped = False
    for k in rounds:
        for s, p in enumerate(prepared):
            # A group's finished runs stay out (a group planned with another group size).
            groups = [
                (m, [r for r in runs if not _finished(p, m, [r])])
                for kk, ss, m, runs in pending
                if kk == k and ss == s
            ]
            if not groups or stopped:
                continue
            left = None if budget is None else budget - (time.monotonic() - t0)
            if left is not None and left <= 0:
                stopped = True
                continue
            log(f"=== leaderboard round {k + 1}: {p.setting.name}, {len(groups)} group(s)")
            name = p.setting.name
            run_protocol(
                p.specs,
                p.setting.settings,
                p.folder,
                data=p.data,
                groups=groups,
                time_budget=left,
                log=lambda line, name=name: log(f"[{name}] {line}"),
                progress_every=progress_every,
                save_weights=save_weights,
            )
            stopped = not all(_finished(p, m, r) for m, r in groups)
    left_over = [g for g in plan if not _finished(prepared[g[1]], g[2], g[3])]
    if stopped:
        log(
            f"leaderboard: time budget spent; {len(left_over)} group(s) left: rerun the same "
            "command to continue"
        )
    done = {}
    for s, p in enumerate(prepared):
        order = {spec.name: i for i, spec in enumerate(p.specs)}
        mine = sorted(
            ((r, order[m], m) for _, ss, m, part in plan if ss == s for r in part),
        )
        paths = [record_path(p.folder, p.sid, m, r) for r, _, m in mine]
        done[p.setting.name] = [files.read_json(path) for path in paths if files.exists(path)]
    return done
