"""Making the KerasTuner tuner over a project folder, and running (or resuming) the search."""

from __future__ import annotations

import copy
import math
import os
import time
from pathlib import Path

import keras
import keras_tuner
import numpy as np

from keras_attn.data import fingerprint_arrays
from keras_attn.protocol.training import check_mixed_precision, fast_path
from keras_attn.tuning.hypermodel import ConvAutoencoderHyperModel
from keras_attn.tuning.presets import OBJECTIVE, check_search_settings, merge_settings
from keras_attn.tuning.project import check_trials, prepare_project, read_trials, search_record

__all__ = ["distributed_role", "make_tuner", "search"]


def distributed_role():
    """This process's part in a distributed search, from KerasTuner's environment variables.

    Returns:
        ``"chief"`` (serves the oracle, trains nothing), ``"worker"`` (trains
        trials the chief hands out) or ``None`` (a search in one process).

    Raises:
        ValueError: ``KERASTUNER_ORACLE_IP`` is set without
            ``KERASTUNER_ORACLE_PORT`` or ``KERASTUNER_TUNER_ID``.

    Example:
    >>> import os
    >>> from unittest import mock
    >>> env = {"KERASTUNER_ORACLE_IP": "127.0.0.1", "KERASTUNER_ORACLE_PORT": "8000"}
    >>> with mock.patch.dict(os.environ, {**env, "KERASTUNER_TUNER_ID": "tuner0"}):
    ...     distributed_role()
    'worker'
    """
    if "KERASTUNER_ORACLE_IP" not in os.environ:
        return None
    missing = [v for v in ("KERASTUNER_ORACLE_PORT", "KERASTUNER_TUNER_ID") if v not in os.environ]
    if missing:
        raise ValueError(
            f"KERASTUNER_ORACLE_IP is set ({os.environ['KERASTUNER_ORACLE_IP']!r}) but "
            f"{' and '.join(missing)} {'is' if len(missing) == 1 else 'are'} not. A distributed "
            "search needs all three in every process: KERASTUNER_TUNER_ID=chief in one, a "
            "unique id (tuner0, tuner1, ...) in each worker."
        )
    return "chief" if "chief" in os.environ["KERASTUNER_TUNER_ID"] else "worker"


def _with_training_options(hypermodel, jit_compile, mixed_precision):
    """``hypermodel``, or a copy with ``jit_compile`` / ``mixed_precision`` replaced."""
    if jit_compile is None and mixed_precision is None:
        return hypermodel
    hypermodel = copy.copy(hypermodel)
    if jit_compile is not None:
        hypermodel.jit_compile = jit_compile
    if mixed_precision is not None:
        hypermodel.mixed_precision = check_mixed_precision(mixed_precision)
    return hypermodel


def make_tuner(hypermodel, tuner="hyperband", **settings):
    """A KerasTuner tuner for ``hypermodel`` whose project folder is checked or created.

    A new project folder gets the search's fingerprint (`search_record`); an
    existing one is resumed only if its fingerprint matches.

    Args:
        hypermodel: a `ConvAutoencoderHyperModel`.
        tuner: str, default ``"hyperband"``; one of `TUNERS` (``"random"``,
            ``"bayesian"``, ``"hyperband"``).
        **settings: keyword-only, defaults in `SEARCH_DEFAULTS`:

            - directory: str, default ``"tuning"``; the folder that holds
              projects (shared by all processes of a distributed search).
            - project_name: str, default ``"ae_search"``; the project's folder
              name.
            - max_trials: int >= 1 or ``None``. Random and Bayesian: the number
              of trials (``None``: 30). Hyperband: a cap on its trials
              (``None``: as many as its brackets hold, about 30 for 10 epochs
              and factor 3).
            - epochs: int, default 10. Epochs per trial (Hyperband:
              ``max_epochs``).
            - batch_size: int, default 128 (recorded in the fingerprint).
            - factor: int >= 2, default 3; Hyperband's reduction factor.
            - seed: int >= 1, default 1; the oracle's seed.
            - overwrite: bool, default ``False``. Delete the project folder and
              start again (ignored by distributed workers: only the chief or a
              single process deletes).
            - data_fingerprint: str or ``None``; identifies the training data.
            - jit_compile: bool or ``None`` (default: the hypermodel's, whose
              default is `keras_attn.protocol.training.fast_path`'s choice). Not part of
              the fingerprint: a search may resume with another setting.
            - mixed_precision: ``None`` (default: the hypermodel's, float32
              unless set), ``"float32"``, ``"mixed_bfloat16"`` or
              ``"mixed_float16"``. Part of the fingerprint when not float32.

            The tuner gets a copy of ``hypermodel`` with ``jit_compile`` and
            ``mixed_precision`` replaced where they are given.

    Returns:
        A ``keras_tuner`` tuner (``RandomSearch``, ``BayesianOptimization`` or
        ``Hyperband``).

    Raises:
        ValueError: an unknown tuner, ``max_trials < 1``, bad settings, or a
            project folder made by a different search.
        TypeError: an unknown keyword argument.

    Example:
    >>> import os, tempfile
    >>> hm = ConvAutoencoderHyperModel({"blocks": [4], "dense_units": 8}, input_shape=(8, 8, 3),
    ...                                space={"sites": {"all": [1, 2]}, "max_depth": 1,
    ...                                       "learning_rate": [0.1]})
    >>> tuner = make_tuner(hm, "random", max_trials=4, directory=tempfile.mkdtemp())
    >>> type(tuner).__name__, sorted(os.listdir(tuner.project_dir))
    ('RandomSearch', ['keras_attn_search.json'])
    """
    s = check_search_settings(**merge_settings("make_tuner", {**settings, "tuner": tuner}))
    tuner, max_trials, epochs, factor, seed = (
        s[k] for k in ("tuner", "max_trials", "epochs", "factor", "seed")
    )
    if not isinstance(hypermodel, ConvAutoencoderHyperModel):
        raise ValueError(
            f"`hypermodel` must be a ConvAutoencoderHyperModel, got {type(hypermodel).__name__}."
        )
    hypermodel = _with_training_options(hypermodel, s["jit_compile"], s["mixed_precision"])
    role = distributed_role()
    record = search_record(
        hypermodel,
        tuner,
        epochs=epochs,
        batch_size=s["batch_size"],
        factor=factor,
        seed=seed,
        data_fingerprint=s["data_fingerprint"],
    )
    directory, project_name = s["directory"], s["project_name"]
    prepare_project(Path(directory) / project_name, record, s["overwrite"], role)

    common = {
        "hypermodel": hypermodel,
        "objective": keras_tuner.Objective(OBJECTIVE, direction="max"),
        "seed": seed,
        "directory": str(directory),
        "project_name": project_name,
        "overwrite": False,  # done above, and never by a worker
    }
    if tuner == "random":
        kt = keras_tuner.RandomSearch(max_trials=max_trials or 30, **common)
    elif tuner == "bayesian":
        trials = max_trials or 30
        kt = keras_tuner.BayesianOptimization(
            max_trials=trials, num_initial_points=min(10, max(3, trials // 3)), **common
        )
    else:
        kt = keras_tuner.Hyperband(max_epochs=epochs, factor=factor, **common)
        if max_trials is not None and isinstance(kt.oracle, keras_tuner.Oracle):
            kt.oracle.max_trials = max_trials
    return kt


def _hyperband_plan(max_epochs, factor):
    """(trials, epochs trained in all) of one Hyperband iteration, by KerasTuner's formulas."""
    brackets, e = 0, max_epochs
    while e >= 1:
        e, brackets = e / factor, brackets + 1
    end_size = math.ceil(1 + math.log(max_epochs, factor))
    trials = epochs = 0
    for b in range(brackets):
        last = 0
        for r in range(b + 1):
            size = math.ceil(end_size / (b + 1) * factor ** (b - r))
            ep = math.ceil(max_epochs / factor ** (b - r))
            trials, epochs, last = trials + size, epochs + size * (ep - last), ep
    return trials, epochs


def _training_summary(hypermodel):
    """How trials compile and why: jit (fast path or as asked) and the dtype policy."""
    fast = fast_path()
    jit = hypermodel.jit_compile
    if jit is None:
        jit, why = fast["jit_compile"], f"fast path: {fast['reason']}"
    elif jit == fast["jit_compile"]:
        why = "as asked; also the fast path"
    else:
        why = f"as asked; the fast path is {fast['jit_compile']}: {fast['reason']}"
    text = f"jit_compile={jit} ({why})"
    if jit and keras.backend.backend() == "tensorflow":
        try:
            from tensorflow.python.framework.config import is_op_determinism_enabled
        except ImportError:  # pragma: no cover
            is_op_determinism_enabled = None
        if is_op_determinism_enabled and is_op_determinism_enabled():
            text += " but Keras turns XLA off while TensorFlow op determinism is on"
    policy = hypermodel.mixed_precision
    text += (
        f"; dtype policy {policy} (as asked)"
        if policy
        else "; dtype policy float32 (mixed precision is opt-in)"
    )
    return text


def _check_arrays(hypermodel, x_train, y_train, x_val, y_val):
    shape = tuple(hypermodel.base_config["input_shape"])
    for name, x in (("x_train", x_train), ("x_val", x_val)):
        if x is None or tuple(np.shape(x)[1:]) != shape:
            raise ValueError(
                f"`{name}` must be images of shape (n, {', '.join(map(str, shape))}) as the "
                f"HyperModel's base config says, got shape {np.shape(x)}."
            )
    n_classes = hypermodel.base_config["num_classes"]
    for name, y in (("y_train", y_train), ("y_val", y_val)):
        y = np.asarray(y)
        if y.ndim != 1 or (y.size and (y.min() < 0 or y.max() >= n_classes)):
            raise ValueError(
                f"`{name}` must be integer labels in 0..{n_classes - 1} of shape (n,), "
                f"got shape {y.shape}."
            )


def _plan_line(s):
    tuner, max_trials, epochs, factor = (s[k] for k in ("tuner", "max_trials", "epochs", "factor"))
    if tuner != "hyperband":
        return f"{max_trials or 30} trials of {epochs} epoch(s)"
    n_trials, n_epochs = _hyperband_plan(epochs, factor)
    line = (
        f"Hyperband: {n_trials} trials, {n_epochs} epochs in all (at most {epochs} a "
        f"trial, factor {factor})" + (f", capped at {max_trials} trials" if max_trials else "")
    )
    if n_trials < 3:
        line += f"; few trials: Hyperband needs more epochs than {epochs} to compare configs"
    return line


def search(hypermodel, x_train, y_train, x_val, y_val, *, verbose=1, log=print, **settings):
    """Run (or resume) a search and check that no trial failed.

    In a distributed search the chief serves the oracle until every worker is
    done (it trains nothing and may pass ``None`` for the arrays); each worker
    trains the trials the chief hands out.

    Args:
        hypermodel: a `ConvAutoencoderHyperModel`.
        x_train, y_train, x_val, y_val: uint8 images ``(n, h, w, c)`` and
            integer labels.
        verbose: 0 (quiet), 1 (KerasTuner's trial summaries) or 2 (also one
            line per epoch).
        log: callable taking one line of progress text, default ``print``.
        **settings: keyword-only, defaults in `SEARCH_DEFAULTS`: ``tuner``
            (default ``"hyperband"``), ``directory``, ``project_name``,
            ``max_trials``, ``epochs``, ``batch_size``, ``factor``, ``seed``,
            ``overwrite``, ``jit_compile``, ``mixed_precision``: see
            `make_tuner`; ``data_fingerprint``: str, default a SHA-256 of the
            four arrays.

    Returns:
        The tuner (``tuner.project_dir`` is the project folder).

    Raises:
        ValueError: bad settings, data that does not fit the HyperModel, or a
            project folder made by a different search.
        TypeError: an unknown keyword argument.
        RuntimeError: a trial failed (with its error).

    Example:
    >>> import tempfile, numpy as np
    >>> hm = ConvAutoencoderHyperModel({"blocks": [4], "dense_units": 8}, input_shape=(8, 8, 3),
    ...                                space={"sites": {"all": [1, 2]}, "max_depth": 1,
    ...                                       "learning_rate": [0.1]})
    >>> x = np.zeros((4, 8, 8, 3), "uint8"); y = np.array([0, 1, 2, 3])
    >>> tuner = search(hm, x, y, x, y, tuner="random", max_trials=1, epochs=1, verbose=0,
    ...                directory=tempfile.mkdtemp(), log=None)
    >>> [t.status for t in read_trials(tuner.project_dir)]
    ['COMPLETED']
    """
    s = merge_settings("search", settings)
    role = distributed_role()
    log = log or (lambda line: None)
    if role != "chief" or x_train is not None:
        _check_arrays(hypermodel, x_train, y_train, x_val, y_val)
        if s["data_fingerprint"] is None:
            s["data_fingerprint"] = fingerprint_arrays(x_train, y_train, x_val, y_val)
    kt = make_tuner(hypermodel, **s)
    project_dir = kt.project_dir
    before = read_trials(project_dir)
    done_before = {t.trial_id for t in before if t.status == "COMPLETED"}
    log(hypermodel.describe())
    state = f"resuming: {len(done_before)} trial(s) finished" if before else "new project"
    where = {"chief": "chief (serves the oracle, trains nothing)", "worker": "worker"}.get(
        role, "one process"
    )
    log(f"{s['tuner']} search in {project_dir}: {state}; {_plan_line(s)}; {where}")
    if role == "chief":
        log(
            f"chief: serving on {os.environ['KERASTUNER_ORACLE_IP']}:"
            f"{os.environ['KERASTUNER_ORACLE_PORT']} until every worker is done"
        )
        t0 = time.perf_counter()
        kt.search(verbose=verbose)
    else:
        log(f"training: {_training_summary(kt.hypermodel)}")
        t0 = time.perf_counter()
        kt.search(
            x_train,
            y_train,
            validation_data=(x_val, y_val),
            epochs=s["epochs"],
            batch_size=s["batch_size"],
            verbose=verbose,
        )
    seconds = time.perf_counter() - t0
    check_trials(project_dir)
    new = [
        t
        for t in read_trials(project_dir)
        if t.status == "COMPLETED" and t.trial_id not in done_before
    ]
    per = f", {seconds / len(new):.1f}s per new trial" if new and role is None else ""
    log(f"search finished in {seconds:.1f}s: {len(new)} new trial(s){per}")
    return kt
