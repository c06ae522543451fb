"""The project folder as state: the search's fingerprint record, and the check before resuming."""

from __future__ import annotations

import glob
import hashlib
import json
import os
import shutil
from pathlib import Path

from keras_attn import _files as files
from keras_attn.tuning.presets import OBJECTIVE
from keras_attn.zoo import get_config

__all__ = [
    "RECORD_FILE",
    "SPACE_FORMAT",
    "check_trials",
    "prepare_project",
    "read_trials",
    "read_record",
    "record_differences",
    "search_record",
]

#: Version of the search-space logic; part of the project fingerprint.
SPACE_FORMAT = 1
#: The fingerprint file in each project folder.
RECORD_FILE = "keras_attn_search.json"

# What a fingerprint key that is left out means (it is recorded only when set).
_ABSENT = {
    "training.mixed_precision": "float32",
    "training.recipe": "the study's training",
    "hypermodel.space.gates": None,
}


def search_record(
    hypermodel, tuner, *, epochs, batch_size, factor=3, seed=1, data_fingerprint=None
):
    """The settings that make trials of one project comparable (stored as its fingerprint).

    ``max_trials`` is not part of it: raising it continues a search. The
    hypermodel's ``mixed_precision`` is recorded (as
    ``training.mixed_precision``) only when set, so float32 searches keep the
    fingerprint they always had; so are the space's gate choices (``gates``),
    so searches of the conv-AE gate alone keep theirs; and its ``recipe``. Its ``jit_compile`` is
    not recorded (it changes results only within float tolerance).

    Args:
        hypermodel: a `ConvAutoencoderHyperModel`.
        tuner: one of `TUNERS`.
        epochs: epochs per trial (Hyperband: the most a trial trains).
        batch_size: training batch size.
        factor: Hyperband's reduction factor (recorded for Hyperband only).
        seed: the oracle's seed.
        data_fingerprint: str or ``None`` (unknown: not compared).

    Returns:
        A JSON-able dict.

    Example:
    >>> from keras_attn.tuning import ConvAutoencoderHyperModel
    >>> rec = search_record(ConvAutoencoderHyperModel(), "random", epochs=1, batch_size=64)
    >>> rec["tuner"]["kind"], rec["training"]["epochs"]
    ('random', 1)
    """
    tuner_settings = {"kind": tuner, "seed": seed, "objective": OBJECTIVE}
    if tuner == "hyperband":
        tuner_settings["factor"] = factor
    training = {
        "epochs": epochs,
        "batch_size": batch_size,
        "optimizer": "sgd",
        "loss": "sparse_categorical_crossentropy",
    }
    if hypermodel.mixed_precision is not None:
        training["mixed_precision"] = hypermodel.mixed_precision
    if getattr(hypermodel, "recipe", None):  # only when set: earlier searches keep theirs
        training["recipe"] = hypermodel.recipe
    record = {
        "format": SPACE_FORMAT,
        "hypermodel": {
            "class": type(hypermodel).__name__,
            "base_config": hypermodel.base_config,
            "space": {k: v for k, v in hypermodel.space.items() if k != "gates" or v is not None},
            "seed": hypermodel.seed,
        },
        "tuner": tuner_settings,
        "training": training,
        "data": data_fingerprint,
    }
    return json.loads(json.dumps(record, sort_keys=True))


def _flatten(d, prefix=""):
    out = {}
    for k, v in d.items():
        key = f"{prefix}{k}"
        if isinstance(v, dict) and v:
            out.update(_flatten(v, key + "."))
        else:
            out[key] = v
    return out


def _short(v, n=70):
    text = json.dumps(v)
    return text if len(text) <= n else text[: n - 3] + "..."


def _normalised(record):
    """``record`` with its base config as `keras_attn.get_config` writes it today, so a
    folder made before the config format changed (every gate's options, used or not)
    compares equal to the same search now."""
    base = (record.get("hypermodel") or {}).get("base_config")
    if not isinstance(base, dict):
        return record
    try:
        base = get_config(base)
    except ValueError:
        return record  # not a config this version reads: compared as it is
    return {**record, "hypermodel": {**record["hypermodel"], "base_config": base}}


def record_differences(stored, current):
    """One line per setting where two records differ (an unknown data fingerprint matches any).

    Args:
        stored: the record in the project folder.
        current: the record of this search (`search_record`).

    Example:
    >>> record_differences({"tuner": {"kind": "random"}, "data": None},
    ...                    {"tuner": {"kind": "hyperband"}, "data": "3f1c"})
    ['tuner.kind: folder has "random", this search has "hyperband"']
    """
    a, b = _flatten(_normalised(stored)), _flatten(_normalised(current))
    diffs = []
    for key in sorted(set(a) | set(b)):
        if key == "data" and (a.get(key) is None or b.get(key) is None):
            continue
        absent = _ABSENT.get(key, "<missing>")
        if a.get(key, absent) != b.get(key, absent):
            diffs.append(
                f"{key}: folder has {_short(a.get(key, absent))}, this search has "
                f"{_short(b.get(key, absent))}"
            )
    return diffs


def _record_hash(record):
    return hashlib.sha256(json.dumps(record, sort_keys=True).encode()).hexdigest()


def _write_record(path, record):
    files.write_json(path, {"search": record, "sha256": _record_hash(record)}, indent=2)


def _refuse_foreign_folder(project_dir):
    """Raise if ``project_dir`` holds a KerasTuner search that keras_attn did not record."""
    if not project_dir.exists():
        return
    leftovers = [
        p.name
        for p in project_dir.glob("*")
        if p.name == "oracle.json" or p.name.startswith("trial_")
    ]
    if leftovers:
        raise ValueError(
            f"Project folder {project_dir} holds a KerasTuner search ({', '.join(leftovers[:3])}"
            f"{', ...' if len(leftovers) > 3 else ''}) but no {RECORD_FILE}: it was not made by "
            "keras_attn.tuning, so there is no telling which search space it used. Choose "
            "another project, or start it again with --overwrite (overwrite=True)."
        )


def prepare_project(project_dir, record, overwrite=False, role=None):
    """Make ``project_dir`` ready for the search ``record`` describes, or refuse it.

    A new folder gets the record (``RECORD_FILE``); a folder with the same
    record resumes (a record without a data fingerprint gets this one's); a
    folder made by a different search, or by KerasTuner without keras_attn, is
    refused with the differences listed.

    Args:
        project_dir: the project folder (``directory/project_name``).
        record: the search's record (`search_record`).
        overwrite: bool, default ``False``; delete the folder first (never
            done by a distributed worker).
        role: `distributed_role`'s answer (``"chief"``, ``"worker"`` or ``None``).

    Raises:
        ValueError: the folder was made by a different search, or its record
            is damaged.

    Example:
    >>> import tempfile
    >>> project = tempfile.mkdtemp() + "/p"
    >>> prepare_project(project, {"tuner": {"kind": "random"}})
    >>> prepare_project(project, {"tuner": {"kind": "random"}})  # the same search: resumes
    >>> prepare_project(project, {"tuner": {"kind": "hyperband"}})  # doctest: +ELLIPSIS
    Traceback (most recent call last):
    ValueError: Project folder ... was made by a different search; ...
    """
    project_dir = Path(project_dir)
    path = project_dir / RECORD_FILE
    if overwrite and role != "worker" and project_dir.exists():
        shutil.rmtree(project_dir)
    if not path.exists():
        _refuse_foreign_folder(project_dir)
        _write_record(path, record)
        return
    try:
        stored = json.loads(path.read_text())["search"]
    except (ValueError, KeyError, TypeError) as e:
        raise ValueError(
            f"{path} is damaged ({type(e).__name__}: {e}); cannot tell which search made "
            f"{project_dir}. Choose another project, or overwrite it."
        ) from None
    diffs = record_differences(stored, record)
    if diffs:
        raise ValueError(
            f"Project folder {project_dir} was made by a different search; resuming would "
            "mix trials of two searches. Differences:\n  - "
            + "\n  - ".join(diffs[:8])
            + ("\n  - ..." if len(diffs) > 8 else "")
            + "\nChoose another project (--project / project_name=), or start this one "
            "again with --overwrite (overwrite=True), which deletes its trials."
        )
    if stored.get("data") is None and record.get("data") is not None:
        _write_record(path, record)


def read_record(project_dir):
    """The search record stored in a project folder.

    Raises:
        FileNotFoundError: the folder has no record (not a keras_attn search).

    Example:
    >>> import tempfile
    >>> project = tempfile.mkdtemp() + "/p"
    >>> prepare_project(project, {"tuner": {"kind": "random"}})
    >>> read_record(project)
    {'tuner': {'kind': 'random'}}
    """
    path = Path(project_dir) / RECORD_FILE
    if not path.exists():
        raise FileNotFoundError(
            f"{path} not found: {project_dir} is not a keras_attn search project."
        )
    return json.loads(path.read_text())["search"]


def read_trials(project_dir):
    """Every trial of a project, read from its ``trial_*/trial.json`` files.

    Works in every process of a distributed search (they share the folder); a
    file being written by another process is skipped.

    Args:
        project_dir: the project folder (``directory/project_name``).

    Returns:
        list of ``keras_tuner.engine.trial.Trial``, by trial id.

    Example:
    >>> import os, tempfile, keras_tuner
    >>> from keras_tuner.engine.trial import Trial
    >>> project = tempfile.mkdtemp(); os.makedirs(f"{project}/trial_0")
    >>> trial = Trial(keras_tuner.HyperParameters(), "0", "COMPLETED")
    >>> _ = trial.save(f"{project}/trial_0/trial.json")
    >>> [(t.trial_id, t.status) for t in read_trials(project)]
    [('0', 'COMPLETED')]
    """
    from keras_tuner.engine.trial import Trial

    trials = []
    for fname in sorted(glob.glob(os.path.join(str(project_dir), "trial_*", "trial.json"))):
        try:
            trials.append(Trial.load(fname))
        except (ValueError, KeyError, OSError):
            continue  # being written by another process
    return sorted(trials, key=lambda t: t.trial_id)


def check_trials(project_dir):
    """Raise if any trial of the project FAILED, with that trial's error.

    KerasTuner records a crashing trial as FAILED and moves on (a search of
    fewer than 3 trials does not even raise), and a resumed search never
    retries it. `search` calls this after every search.

    Args:
        project_dir: the project folder.

    Raises:
        RuntimeError: naming the failed trials, with the first one's error.

    Example:
    >>> import os, tempfile, keras_tuner
    >>> from keras_tuner.engine.trial import Trial
    >>> project = tempfile.mkdtemp(); os.makedirs(f"{project}/trial_0")
    >>> check_trials(project)  # no trial yet: nothing failed
    >>> trial = Trial(keras_tuner.HyperParameters(), "0", "FAILED")
    >>> trial.message = "ValueError: boom"
    >>> _ = trial.save(f"{project}/trial_0/trial.json")
    >>> check_trials(project)  # doctest: +ELLIPSIS
    Traceback (most recent call last):
    RuntimeError: 1 trial(s) of ... failed (0); a resumed search never retries them. ...
    """
    failed = [t for t in read_trials(project_dir) if t.status in ("FAILED", "INVALID")]
    if failed:
        message = (failed[0].message or "(no message)").strip()
        raise RuntimeError(
            f"{len(failed)} trial(s) of {project_dir} failed "
            f"({', '.join(t.trial_id for t in failed)}); a resumed search never retries them. "
            f"Fix the cause and start again with --overwrite (overwrite=True). "
            f"Trial {failed[0].trial_id}'s error:\n{message}"
        )
