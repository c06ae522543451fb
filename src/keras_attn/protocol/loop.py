"""The one training loop of the protocol: a group of runs of one model, a single run being a
group of one.

For every run: seed it (`run_seed`), build the model as a single run would, train epoch by
epoch with a validation pass after each, keep the best-validation weights, and finish it
(`keras_attn.protocol.finish`). The trainer (`keras_attn.protocol.fit_trainer`) is
``model.fit`` on one run's model, or on the JAX backend the compiled, vectorised steps of
`keras_attn.protocol.jax_trainer` for a group of runs. Whichever it is, resume,
divergence, checkpoints (every ``settings.checkpoint_every`` seconds) and a group too big
for the device are handled here, once.
"""

from __future__ import annotations

import dataclasses
import gc
import time

import numpy as np

from keras_attn import _files as files
from keras_attn.protocol import records
from keras_attn.protocol.finish import MASK_STATISTICS_IMAGES, finish_run
from keras_attn.protocol.fit_trainer import make_trainer
from keras_attn.protocol.jax_trainer import is_out_of_memory
from keras_attn.protocol.models import ModelSpec, resolve_models
from keras_attn.protocol.precision import apply_precision, precision_in_use
from keras_attn.protocol.preemption import exit_if_preempted, preempted
from keras_attn.protocol.progress import EpochProgress, diverged_line, epoch_line
from keras_attn.protocol.settings import run_seed
from keras_attn.protocol.training import resolve_training
from keras_attn.runtime import configure_runtime, runtime_settings

__all__ = ["run_group", "run_one"]


@dataclasses.dataclass(frozen=True)
class Job:
    """What every run of one group shares."""

    spec: ModelSpec
    settings: object
    data: object
    out_dir: str
    sid: str
    training: dict
    save_weights: bool
    log: object

    @property
    def build_kwargs(self):
        """What `keras_attn.build` takes besides the model, for this data."""
        return build_kwargs(self.settings, self.data)


def build_kwargs(settings, data):
    """What `keras_attn.build` takes besides the model: the data's shape and classes, and
    the settings' config overrides."""
    return {
        "input_shape": list(data.input_shape),
        "num_classes": data.num_classes,
        **settings.model_overrides,
    }


def ensure_runtime(settings):
    """Configure threads and deterministic ops unless they already are as ``settings`` asks.

    A process's first run configures them; a later run with another
    ``deterministic`` switches it (thread pools cannot change once TensorFlow runs).
    """
    current = runtime_settings()
    if not current or current.get("deterministic") != bool(settings.deterministic):
        configure_runtime(settings.threads, settings.deterministic)
    apply_precision(settings.precision)  # process-wide; the default restores the backend's
    if settings.compile_cache:
        use_compile_cache(settings.compile_cache)


def _new_state():
    return {
        "epochs_done": 0,
        "train_loss": [],
        "train_accuracy": [],
        "val_loss": [],
        "val_accuracy": [],
        "epoch_seconds": [],
        "epoch_cpu_seconds": [],
        "best_epoch": None,
        "best_val_accuracy": None,
        "diverged": False,
        "diverged_epoch": None,
        "resumed_at_epochs": [],
        "started_at": records.now(),
    }


def _record_epoch(state, epoch, train, val, seconds, cpu_seconds):
    """Append one epoch's figures to ``state`` and keep its best epoch up to date.

    Returns ``"diverged"`` (a non-finite loss: the run stops here), ``"best"`` (the
    best validation accuracy so far; the first epoch wins ties: keep its weights)
    or ``None``.
    """
    (train_loss, train_acc), (val_loss, val_acc) = train, val
    for key, value in (
        ("train_loss", train_loss),
        ("train_accuracy", train_acc),
        ("val_loss", val_loss),
        ("val_accuracy", val_acc),
        ("epoch_seconds", seconds),
        ("epoch_cpu_seconds", cpu_seconds),
    ):
        state[key].append(value)
    state["epochs_done"] = epoch + 1
    if not (np.isfinite(train_loss) and np.isfinite(val_loss)):
        state["diverged"], state["diverged_epoch"] = True, epoch + 1
        return "diverged"
    if state["best_val_accuracy"] is None or val_acc > state["best_val_accuracy"]:
        state["best_epoch"], state["best_val_accuracy"] = epoch + 1, val_acc
        return "best"
    return None


def _check_runs(run_indices):
    runs = list(run_indices)
    for r in runs:
        if isinstance(r, bool) or not isinstance(r, (int, np.integer)) or r < 0:
            raise ValueError(f"Run numbers must be integers >= 0, got {run_indices!r}.")
    if not runs or len(set(runs)) != len(runs):
        raise ValueError(f"`run_indices` must be distinct run numbers, got {run_indices!r}.")
    return [int(r) for r in runs]


def _prefix(name, runs):
    if len(runs) == 1:
        return f"[{name} run {runs[0]}]"
    if runs == list(range(runs[0], runs[-1] + 1)):
        return f"[{name} runs {runs[0]}-{runs[-1]}]"
    return f"[{name} runs {','.join(map(str, runs))}]"


def train_group(job, runs, *, on_epoch=None, eta=None, progress_every=60.0):
    """Train ``runs`` of ``job.spec`` (resuming a checkpoint), finish each, return the records.

    A group that does not fit in the device's memory (XLA's ``RESOURCE_EXHAUSTED``)
    is split in two halves, each trained as a group of its own, and the log says so.
    """
    try:
        return _train_group(job, runs, on_epoch, eta, progress_every)
    except Exception as e:  # noqa: BLE001 - only out-of-memory errors are handled
        if len(runs) < 2 or not is_out_of_memory(e):
            raise
        reason = str(e).strip().splitlines()[0][:200]
        e.__traceback__ = None  # frees the failed group's device buffers
    gc.collect()
    half = len(runs) // 2
    parts = [runs[:half], runs[half:]]
    name = job.spec.name
    job.log(
        f"{_prefix(name, runs)} does not fit in device memory ({reason}); splitting into "
        f"groups of {len(parts[0])} and {len(parts[1])}: runs {parts[0]} and {parts[1]}"
    )
    files.remove(records.checkpoint_path(job.out_dir, job.sid, name, runs))
    out = []
    for part in parts:
        training = {**job.training, **group_training(part)}
        sub = dataclasses.replace(job, training=training)
        out += train_group(sub, part, on_epoch=on_epoch, eta=eta, progress_every=progress_every)
    return out


def _train_group(job, runs, on_epoch, eta, progress_every):
    settings, data, out_dir, sid, log = job.settings, job.data, job.out_dir, job.sid, job.log
    name = job.spec.name
    record_paths = [records.record_path(out_dir, sid, name, r) for r in runs]
    ckpt_path = records.checkpoint_path(out_dir, sid, name, runs)
    if all(files.exists(p) for p in record_paths):
        files.remove(ckpt_path)  # left over if a process died between the two steps
        files.prune_empty_dirs(out_dir, "checkpoints", sid, name)
        return [files.read_json(p) for p in record_paths]
    files.remove_stale_temps(ckpt_path)  # only this group writes these names
    for p in record_paths:
        files.remove_stale_temps(p)
    ensure_runtime(settings)
    seeds = [run_seed(settings.base_seed, r) for r in runs]
    trainer = make_trainer(job, runs, seeds)
    # What ran: XLA or not (Keras may turn it off), the trainer, the backend's precision switch.
    switch = precision_in_use(settings.precision)["backend_switch"]
    training = {**job.training, **trainer.training, "precision_switch": switch}
    job = dataclasses.replace(job, training=training)

    n = len(runs)
    group = {"runs": runs, "epochs_done": 0, "states": [_new_state() for _ in runs]}
    prefix = _prefix(name, runs)
    if files.exists(ckpt_path):
        group, arrays = records.load_checkpoint(ckpt_path)
        trainer.load(arrays)
        for state in group["states"]:
            if not state["diverged"]:
                state["resumed_at_epochs"].append(group["epochs_done"])
        log(f"{prefix} resuming after epoch {group['epochs_done']}")
    states = group["states"]
    saved_at = time.monotonic()

    for epoch in range(group["epochs_done"], settings.epochs):
        active = [i for i in range(n) if not states[i]["diverged"]]
        if not active:
            break
        t0, cpu0 = time.perf_counter(), time.process_time()
        trainer.set_epoch(epoch)
        callbacks = []
        if progress_every:
            callbacks.append(
                EpochProgress(log, f"{prefix} epoch {epoch + 1}", trainer.steps, progress_every)
            )
        train = trainer.fit_epoch(callbacks)
        val = trainer.validate(data.x_val, data.y_val, settings.batch_size)
        # Each run's share of the group's time.
        seconds = (time.perf_counter() - t0) / len(active)
        cpu_seconds = (time.process_time() - cpu0) / len(active)
        for i in active:
            state, run = states[i], runs[i]
            outcome = _record_epoch(state, epoch, train[i], val[i], seconds, cpu_seconds)
            if on_epoch:
                on_epoch(name, run, epoch, seconds)
            if outcome == "diverged":
                log(diverged_line(f"[{name} run {run}]", state))
                continue
            if outcome == "best":
                trainer.keep_best(i)
            log(epoch_line(f"[{name} run {run}]", settings, state, eta))
        group["epochs_done"] = epoch + 1
        last = epoch + 1 == settings.epochs
        due = time.monotonic() - saved_at >= settings.checkpoint_every
        if preempted() or (due and not last):
            records.save_checkpoint_values(ckpt_path, *trainer.checkpoint(), group)
            saved_at = time.monotonic()
        exit_if_preempted()  # a preempted job (keras_attn.protocol.launcher) stops here

    out, tests, masks = [], None, None
    for i, run in enumerate(runs):
        if files.exists(record_paths[i]):  # written before a kill that left the checkpoint
            out.append(files.read_json(record_paths[i]))
            continue
        if tests is None:
            tests = trainer.test(data.x_test, data.y_test, settings.batch_size)
            masks = trainer.mask_statistics(data.x_test[:MASK_STATISTICS_IMAGES])
        model, best = trainer.finished(i)
        out.append(finish_run(job, run, model, best, states[i], test=tests[i], masks=masks[i]))
    files.remove(ckpt_path)
    files.prune_empty_dirs(out_dir, "checkpoints", sid, name)
    return out


def group_training(runs):
    """What a record's ``training`` says of its group: its size and, for more than one
    run, the runs trained together.

    Example:
        >>> group_training([0, 1]), group_training([3])
        ({'group_size': 2, 'group': [0, 1]}, {'group_size': 1, 'group': None})
    """
    return {"group_size": len(runs), "group": list(runs) if len(runs) > 1 else None}


def use_compile_cache(folder):
    """Keep XLA's compiled programs in ``folder`` (JAX's persistent compilation cache), so a
    later process with the same models and shapes skips compiling. No-op off JAX."""
    import keras

    if keras.backend.backend() != "jax":
        return
    import jax

    jax.config.update("jax_compilation_cache_dir", str(folder))
    jax.config.update("jax_persistent_cache_min_compile_time_secs", 1.0)


def _job(model, settings, data, out_dir, save_weights, log, runs):
    spec = resolve_models([model])[0] if not isinstance(model, ModelSpec) else model
    if len(data.y_val) == 0:
        raise ValueError("The protocol needs validation images; got val_size=0.")
    ensure_runtime(settings)
    training = {**resolve_training(settings), **group_training(runs)}
    sid = settings.settings_id(data.fingerprint())
    return Job(spec, settings, data, out_dir, sid, training, save_weights, log or (lambda _: None))


def run_group(
    model,
    run_indices,
    settings,
    data,
    out_dir,
    *,
    log=None,
    on_epoch=None,
    eta=None,
    progress_every=60.0,
    save_weights=True,
):
    """Train several runs of one model, as one group where the trainer allows; write each
    run's record.

    On the JAX trainer the runs are built as single runs build them (same seeds, same
    initial weights) and trained together, vectorised, each on its own shuffled
    batches with its own loss: each trains as if alone (equal to `run_one` within
    float tolerance; tested). The ``model.fit`` trainer trains them one after the
    other. Validation, best epoch, test evaluation, weights and records are per run;
    the record's ``training`` names the group, and its ``epoch_seconds`` are each
    run's share of the group's epoch time. A run that diverges is recorded as
    diverged while the others go on. A killed group resumes as a group. With one
    run this is `run_one`.

    Args:
        model: a registry name, a config dict (with a ``"name"``) or a config
            ``.json`` path.
        run_indices: list of distinct run numbers (>= 0).
        settings: a `keras_attn.protocol.ProtocolSettings`.
        data: the `keras_attn.data.Dataset` (``settings.data_settings().load()``).
        out_dir: output folder (local path or ``tf.io.gfile`` path).
        log: callable taking one line of progress text (``None``: silent).
        on_epoch: callable ``on_epoch(model_name, run_index, epoch, seconds)``
            after every finished epoch of every run.
        eta: callable returning the seconds left in the whole protocol, or ``None``.
        progress_every: seconds between in-epoch progress lines (0: none).
        save_weights: keep each run's best-validation weights (see `run_one`).

    Returns:
        list of records, one per run, in ``run_indices`` order.

    Example:
        >>> import tempfile, numpy as np
        >>> from keras_attn.data import DataSettings, save_npz
        >>> from keras_attn.protocol import ProtocolSettings
        >>> folder = tempfile.mkdtemp()
        >>> x = np.random.default_rng(0).integers(0, 256, (40, 32, 32, 3), dtype="uint8")
        >>> save_npz(folder + "/d.npz", x, np.arange(40) % 10, x[:8], np.arange(8) % 10)
        >>> settings = ProtocolSettings(runs=2, epochs=1, batch_size=8, data=folder + "/d.npz",
        ...                             val_size=8, model_overrides={"blocks": [4, 8],
        ...                             "dense_units": 8})
        >>> data = settings.data_settings().load()
        >>> recs = run_group("cnn", [0, 1], settings, data, folder + "/out", save_weights=False)
        >>> [(r["run"], r["test_accuracy"] is not None) for r in recs]
        [(0, True), (1, True)]
    """
    runs = _check_runs(run_indices)
    groups = [runs] if resolve_training(settings)["trainer"] == "jax" else [[r] for r in runs]
    out = []
    for part in groups:
        job = _job(model, settings, data, out_dir, save_weights, log, part)
        out += train_group(job, part, on_epoch=on_epoch, eta=eta, progress_every=progress_every)
    return out


def run_one(
    model,
    run_index,
    settings,
    data,
    out_dir,
    *,
    log=None,
    on_epoch=None,
    eta=None,
    progress_every=60.0,
    save_weights=True,
):
    """Train one run of one model (or resume it), evaluate it, write its record.

    If the record exists already it is returned unchanged. Otherwise the run is
    seeded with `keras_attn.protocol.run_seed`, trained epoch by epoch (resuming
    from ``OUT/checkpoints/...`` if a previous process was killed), validated
    after each epoch; its best-validation weights (first epoch among equal
    accuracies) are evaluated on the test set and the record is written
    atomically. A run whose loss becomes NaN or infinite stops there and is
    recorded with ``diverged: true``; its test accuracy comes from its best
    epoch before the divergence, or is ``None``.

    Timings in the record: ``epoch_seconds`` (wall time of training plus
    validation, per epoch), ``epoch_cpu_seconds`` (CPU time of the process over
    all its threads), ``wall_time_s`` (their sum plus the test evaluation).

    Args:
        model, settings, data, out_dir, log, on_epoch, eta, progress_every: as
            for `run_group`.
        run_index: run number (>= 0).
        save_weights: bool, default True. Save the best-validation weights as
            ``OUT/weights/<settings_id>/<model>/run-NNNN.weights.h5`` (about 11 MB
            per run for ``cnn``), so the run can be exported.

    Returns:
        The record (a dict).

    Example:
        >>> import tempfile, numpy as np
        >>> from keras_attn.data import save_npz
        >>> from keras_attn.protocol import ProtocolSettings
        >>> folder = tempfile.mkdtemp()
        >>> x = np.random.default_rng(0).integers(0, 256, (40, 32, 32, 3), dtype="uint8")
        >>> save_npz(folder + "/d.npz", x, np.arange(40) % 10, x[:8], np.arange(8) % 10)
        >>> settings = ProtocolSettings(epochs=2, batch_size=8, data=folder + "/d.npz",
        ...                             val_size=8, model_overrides={"blocks": [4, 8],
        ...                             "dense_units": 8})
        >>> rec = run_one("cnn", 0, settings, settings.data_settings().load(), folder + "/out")
        >>> rec["epochs_trained"], rec["seed"], 0 <= rec["test_accuracy"] <= 1
        (2, 0, True)
    """
    (run,) = _check_runs([run_index])
    job = _job(model, settings, data, out_dir, save_weights, log, [run])
    return train_group(job, [run], on_epoch=on_epoch, eta=eta, progress_every=progress_every)[0]
