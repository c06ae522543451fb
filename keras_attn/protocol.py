"""The study's multi-seed protocol: train every model several times, keep the records.

For every (model, run): seed everything from ``base_seed + run``, train with a
validation pass after each epoch, keep the best-validation weights, evaluate
them on the test set and write one JSON record holding the result and every
setting needed to reproduce it (`run_one`). `run_protocol` runs a list of
models x runs, or one shard of it, and can be stopped at any time: rerunning
it skips finished runs and resumes an interrupted one from its last finished
epoch, with the same result as an uninterrupted run.

Output folder layout (a local path or any ``tf.io.gfile`` path, e.g. ``gs://``)::

    OUT/settings/<settings_id>.json                      the settings of each id
    OUT/records/<settings_id>/<model>/run-0003.json     one record per finished run
    OUT/checkpoints/<settings_id>/<model>/run-0003.npz  the state of an unfinished run

Every file is written under a temporary name and renamed, so a killed process
leaves either the old or the new file, never half of one. One file per record
means shards writing into one folder never touch the same file; the report
(`keras_attn.report`) merges them into ``results.jsonl`` and the tables.

``settings_id`` is a hash of the settings that make results comparable
(training settings, data content, seeds), not of how they were obtained
(paths, threads, backend). A folder holding records of other settings is
refused unless ``allow_mixed=True``.
"""

from __future__ import annotations

import dataclasses
import datetime
import hashlib
import io
import json
import math
import os
import posixpath
import tempfile
import time

import keras
import numpy as np

import keras_attn
from keras_attn import _files as files
from keras_attn._checks import check_int
from keras_attn.data import ArrayBatches, DataSettings
from keras_attn.runtime import (
    configure_runtime,
    device_description,
    environment,
    runtime_settings,
)
from keras_attn.training import (
    check_jit_compile,
    check_mixed_precision,
    compile_for_training,
    dtype_policy,
    fast_path,
)

__all__ = [
    "PRESETS",
    "ProtocolSettings",
    "configure_runtime",
    "environment",
    "load_protocol_data",
    "parse_duration",
    "parse_shard",
    "plan_tasks",
    "resolve_training",
    "run_group",
    "run_one",
    "run_protocol",
    "run_seed",
]

RECORD_FORMAT = 1
_STUDY_MODELS = keras_attn.zoo.STUDY_VARIANTS
OPTIMIZERS = ("sgd", "adam", "adamw", "rmsprop")
PREPROCESSING = "none: uint8 pixels cast to float32, 0..255; the model rescales by 1/255"
AUGMENTATION = "none"

# Settings that decide whether two results may be pooled. Everything else in
# ProtocolSettings (paths, threads, how data is fetched) is recorded but is not
# part of the settings id.
_COMPARABLE = (
    "epochs",
    "optimizer",
    "learning_rate",
    "momentum",
    "batch_size",
    "base_seed",
    "val_size",
    "split_seed",
    "train_limit",
    "val_limit",
    "test_limit",
    "model_overrides",
    "deterministic",
)


# --------------------------------------------------------------------------- settings


@dataclasses.dataclass
class ProtocolSettings:
    """Every setting of the protocol; stored with each record.

    Defaults follow the study where it says something (16 runs, 10 epochs,
    learning rate 0.1, 5,000 validation images); where it is silent they are
    assumptions, marked here: plain SGD without momentum, batch size 128, no
    augmentation, no preprocessing beyond the model's 1/255 rescaling.

    Args:
        runs: trainings per model, each with its own seed (study: 16).
        epochs: epochs per run (study: 10).
        optimizer: one of ``OPTIMIZERS`` (assumed: ``"sgd"``).
        learning_rate: constant learning rate (study: 0.1).
        momentum: SGD momentum (assumed: 0.0); must be 0 for other optimizers.
        batch_size: training batch size (assumed: 128).
        base_seed: run ``r`` uses seed ``base_seed + r``.
        data: ``"tfds:NAME"``, an image-folder path or an ``.npz`` path.
        val_size: training images held out for validation (study: 5,000).
        split_seed: seed of the train / validation split.
        train_limit, val_limit, test_limit: keep only this many images of each
            part (``None``: all); for quick runs.
        model_overrides: config keys passed to `keras_attn.build` for every model
            (e.g. ``{"head": ...}``).
        threads: CPU threads for the backend (``None``: all cores); recorded.
        deterministic: enable deterministic ops (TensorFlow / PyTorch).
        tfds_data_dir: tensorflow-datasets data folder (``None``: tfds' default).
        download: allow tensorflow-datasets to download missing data.
        cache_dir: decode cache for image folders (``None``: no cache).
        jit_compile: jit-compile the training step (XLA); ``None`` (default):
            `keras_attn.training.fast_path`'s choice for this backend and device
            (off on TensorFlow CPU, where XLA measured slower; on for JAX). Not
            part of the settings id: it changes results only within float
            tolerance.
        mixed_precision: ``None`` (default, float32), ``"mixed_bfloat16"`` or
            ``"mixed_float16"``: the dtype policy the models are built under.
            Part of the settings id when set (it changes results).
        copies: runs of one model trained at once, packed in one model
            (`keras_attn.parallel`); ``None`` (default): `fast_path`'s choice (1
            on a CPU, where packing measured no gain; 8 on a GPU). Each run's
            arithmetic is its own, so results equal unpacked runs within float
            tolerance, and ``copies`` is not part of the settings id.

    Example:
        >>> s = ProtocolSettings(runs=4, epochs=2, data="/data/cifar10-folder")
        >>> s.runs, s.learning_rate
        (4, 0.1)
    """

    runs: int = 16
    epochs: int = 10
    optimizer: str = "sgd"
    learning_rate: float = 0.1
    momentum: float = 0.0
    batch_size: int = 128
    base_seed: int = 0
    data: str = "tfds:cifar10"
    val_size: int = 5000
    split_seed: int = 0
    train_limit: int | None = None
    val_limit: int | None = None
    test_limit: int | None = None
    model_overrides: dict = dataclasses.field(default_factory=dict)
    threads: int | None = None
    deterministic: bool = True
    tfds_data_dir: str | None = None
    download: bool = False
    cache_dir: str | None = None
    jit_compile: bool | None = None
    mixed_precision: str | None = None
    copies: int | None = None

    def __post_init__(self):
        def _int(name, low, allow_none=False):
            setattr(self, name, check_int(name, getattr(self, name), low, allow_none=allow_none))

        _int("runs", 1)
        _int("epochs", 1)
        _int("batch_size", 1)
        _int("base_seed", 0)
        _int("val_size", 1)
        _int("split_seed", 0)
        for name in ("train_limit", "val_limit", "test_limit", "threads", "copies"):
            _int(name, 1, allow_none=True)
        self.jit_compile = check_jit_compile(self.jit_compile)
        self.mixed_precision = check_mixed_precision(self.mixed_precision)
        if self.mixed_precision == "mixed_float16" and (self.copies or 1) > 1:
            raise ValueError(
                "`mixed_precision='mixed_float16'` cannot pack runs (copies="
                f"{self.copies}): its loss scale is shared, so one run's overflow would skip "
                "every packed run's step. Use copies=1, or mixed_bfloat16 (no loss scale)."
            )
        if self.optimizer not in OPTIMIZERS:
            raise ValueError(f"`optimizer` must be one of {OPTIMIZERS}, got {self.optimizer!r}.")
        lr = self.learning_rate
        if isinstance(lr, bool) or not isinstance(lr, (int, float)) or not lr > 0:
            raise ValueError(f"`learning_rate` must be a number > 0, got {lr!r}.")
        self.learning_rate = float(lr)
        m = self.momentum
        if isinstance(m, bool) or not isinstance(m, (int, float)) or not 0 <= m < 1:
            raise ValueError(f"`momentum` must be a number in [0, 1), got {m!r}.")
        self.momentum = float(m)
        if self.momentum and self.optimizer != "sgd":
            raise ValueError(
                f"`momentum`={self.momentum} applies to optimizer 'sgd' only, "
                f"not {self.optimizer!r}; leave it at 0."
            )
        if not isinstance(self.model_overrides, dict):
            raise ValueError(f"`model_overrides` must be a dict, got {self.model_overrides!r}.")
        if not isinstance(self.data, str) or not self.data:
            raise ValueError(f"`data` must be 'tfds:NAME' or a path, got {self.data!r}.")

    def data_settings(self):
        """The data part of these settings as a `keras_attn.data.DataSettings`.

        Example:
            >>> ProtocolSettings(data="tfds:mnist", val_size=100).data_settings().flags()
            ['--dataset', 'mnist', '--val-size', '100']
        """
        fields = [f.name for f in dataclasses.fields(DataSettings)]
        return DataSettings(**{name: getattr(self, name) for name in fields})

    def to_dict(self) -> dict:
        """All settings as a JSON-able dict.

        Example:
            >>> ProtocolSettings().to_dict()["batch_size"]
            128
        """
        return dataclasses.asdict(self)

    def comparable(self, data_fingerprint) -> dict:
        """The settings that decide whether results may be pooled, plus the data.

        Args:
            data_fingerprint: `keras_attn.data.Dataset.fingerprint` of the data.

        Example:
            >>> c = ProtocolSettings(threads=4).comparable("abc")
            >>> c["learning_rate"], c["data_fingerprint"], "threads" in c
            (0.1, 'abc', False)
        """
        d = {k: getattr(self, k) for k in _COMPARABLE}
        if self.mixed_precision:  # only when set: float32 ids stay what they always were
            d["mixed_precision"] = self.mixed_precision
        d["data_fingerprint"] = data_fingerprint
        d["preprocessing"] = PREPROCESSING
        d["augmentation"] = AUGMENTATION
        return json.loads(json.dumps(d, sort_keys=True))

    def settings_id(self, data_fingerprint) -> str:
        """A 16-hex-digit id of `comparable`.

        Example:
            >>> len(ProtocolSettings().settings_id("abc"))
            16
        """
        text = json.dumps(self.comparable(data_fingerprint), sort_keys=True)
        return hashlib.sha256(text.encode()).hexdigest()[:16]


PRESETS = {
    "study": {
        "description": "the study's protocol: all nine variants, 16 runs x 10 epochs, "
        "CIFAR-10 (45,000 / 5,000 / 10,000)",
        "models": None,
        "settings": {},
    },
    "smoke": {
        "description": "the whole pipeline in minutes on a CPU: 3 models x 2 runs x 2 epochs "
        "on 2,000 train / 500 val / 1,000 test images (the offline JPEG copy when present)",
        "models": ["cnn", "cnn_eca", "cnn_conv_ae"],
        "settings": {
            "runs": 2,
            "epochs": 2,
            "batch_size": 64,
            "train_limit": 2000,
            "val_limit": 500,
            "test_limit": 1000,
        },
    },
}
"""Named protocol configurations: ``models`` (``None``: all registered) and
`ProtocolSettings` overrides. Command-line flags override a preset."""


def run_seed(base_seed, run_index) -> int:
    """The seed of run ``run_index``: ``base_seed + run_index``.

    Example:
        >>> run_seed(0, 3)
        3
    """
    return int(base_seed) + int(run_index)


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


def _register_config_file(path):
    """Register the model config in a JSON file (e.g. the tuner's best_config.json).

    The variant's name is the config's ``name`` (else the file's stem); a name
    already registered with a different config is refused.
    """
    try:
        with open(path) as f:
            config = json.load(f)
    except (OSError, json.JSONDecodeError) as e:
        raise ValueError(f"Cannot read model config file {path!r}: {e}") from None
    if not isinstance(config, dict):
        raise ValueError(f"Model config file {path!r} must hold a JSON object (a config).")
    name = str(config.get("name") or os.path.splitext(os.path.basename(path))[0])
    config = keras_attn.get_config({**config, "name": name})
    if name in keras_attn.zoo.VARIANTS:
        if keras_attn.get_config(name) != config:
            raise ValueError(
                f"Model config file {path!r} is named {name!r}, which is registered with a "
                'different config; give the file\'s config another "name".'
            )
        return name
    keras_attn.register(name, config, f"Config from {path}.")
    return name


def _check_models(models):
    """Model names, checked. An entry ending in ``.json`` is a config file, registered."""
    known = list(keras_attn.list_models())
    if models is None:
        return [m for m in known if m in _STUDY_MODELS]
    if isinstance(models, str):
        models = [m.strip() for m in models.split(",") if m.strip()]
    models = [_register_config_file(m) if str(m).endswith(".json") else m for m in models]
    known = list(keras_attn.list_models())
    if not models:
        raise ValueError(f"No models given; choose from {known} or give a config .json file.")
    unknown = [m for m in models if m not in known]
    if unknown:
        raise ValueError(
            f"Unknown model(s) {unknown}; registered models are {known}, or give the path "
            "of a config .json file (e.g. a tuner's best_config.json)."
        )
    if len(set(models)) != len(models):
        raise ValueError(f"Model list has duplicates: {models}.")
    return models


def plan_tasks(models, runs, shard=None):
    """The (model, run) pairs of a protocol, or of one shard of it.

    Tasks are ordered run by run (run 0 of every model, then run 1, ...), so a
    protocol stopped early has results for every model. Shard ``I/N`` takes every
    N-th task starting at the I-th; the N shards together hold each task once.

    Args:
        models: list of model names (validated against `keras_attn.list_models`).
        runs: runs per model (>= 1).
        shard: ``"I/N"`` or ``(I, N)`` or ``None``.

    Example:
        >>> plan_tasks(["cnn", "cnn_eca"], 2, "1/2")
        [('cnn', 0), ('cnn', 1)]
    """
    models = _check_models(models)
    if isinstance(runs, bool) or not isinstance(runs, (int, np.integer)) or runs < 1:
        raise ValueError(f"`runs` must be an integer >= 1, got {runs!r}.")
    i, n = parse_shard(shard)
    tasks = [(m, r) for r in range(runs) for m in models]
    return tasks[i - 1 :: n]


# --------------------------------------------------------------------------- files


def _record_path(out_dir, settings_id, model, run):
    return files.join(out_dir, "records", settings_id, model, f"run-{run:04d}.json")


def _checkpoint_path(out_dir, settings_id, model, run):
    return files.join(out_dir, "checkpoints", settings_id, model, f"run-{run:04d}.npz")


def _weights_path(out_dir, settings_id, model, run):
    return files.join(out_dir, "weights", settings_id, model, f"run-{run:04d}.weights.h5")


# --------------------------------------------------------------------------- runtime


def _ensure_runtime(settings):
    """Configure threads and deterministic ops unless they already are as ``settings`` asks.

    A process's first run configures them; a later run with another
    ``deterministic`` switches it (thread pools cannot change once TensorFlow runs).
    """
    current = runtime_settings()
    if not current or current.get("deterministic") != bool(settings.deterministic):
        configure_runtime(settings.threads, settings.deterministic)


# --------------------------------------------------------------------------- data


def load_protocol_data(settings):
    """Load and split the data described by ``settings`` (a `ProtocolSettings`).

    The same as ``settings.data_settings().load()``.
    """
    return settings.data_settings().load()


# --------------------------------------------------------------------------- one run


def _make_optimizer(settings):
    lr = settings.learning_rate
    if settings.optimizer == "sgd":
        return keras.optimizers.SGD(learning_rate=lr, momentum=settings.momentum)
    return {
        "adam": keras.optimizers.Adam,
        "adamw": keras.optimizers.AdamW,
        "rmsprop": keras.optimizers.RMSprop,
    }[settings.optimizer](learning_rate=lr)


def _evaluate(model, x, y, batch_size):
    """Loss and accuracy of ``model`` on uint8 images, computed in NumPy."""
    probs = np.asarray(model.predict(ArrayBatches(x, None, batch_size), verbose=0))
    probs = probs.astype(np.float64)
    eps = 1e-7  # Keras' clipping of probabilities in sparse categorical cross-entropy
    p_true = np.clip(probs[np.arange(len(y)), y], eps, 1 - eps)
    loss = float(np.mean(-np.log(p_true)))
    if not np.all(np.isfinite(probs)):
        loss = float("nan")
    acc = float(np.mean(np.argmax(probs, axis=1) == y))
    return loss, acc


def _values(variables):
    return [np.asarray(keras.ops.convert_to_numpy(v)) for v in variables]


def _assign(variables, values, what):
    if len(variables) != len(values):
        raise ValueError(
            f"Checkpoint holds {len(values)} {what} variables but the model has "
            f"{len(variables)}: it belongs to another model or Keras version."
        )
    for v, a in zip(variables, values):
        if tuple(v.shape) != tuple(a.shape):
            raise ValueError(
                f"Checkpoint {what} variable {v.path} has shape {a.shape}, the model "
                f"expects {tuple(v.shape)}."
            )
        v.assign(a)


def _save_checkpoint(path, model, best, state):
    """One ``.npz``: the JSON state, the model's and optimizer's variables, the best values.

    ``best`` maps a name to a list of values (or ``None``): ``{"best": ...}`` for
    a single run, ``{"best0": ..., "best1": ...}`` for a packed group. Each comes
    back from `_load_checkpoint` under its name.
    """
    arrays = {"state": np.frombuffer(files.json_line(state), dtype=np.uint8)}
    for i, a in enumerate(_values(model.variables)):
        arrays[f"model_{i:04d}"] = a
    for i, a in enumerate(_values(model.optimizer.variables)):
        arrays[f"optimizer_{i:04d}"] = a
    for name, values in best.items():
        for i, a in enumerate(values or []):
            arrays[f"{name}_{i:04d}"] = a
    buf = io.BytesIO()
    np.savez(buf, **arrays)
    files.write_atomic(path, buf.getvalue())


def _load_checkpoint(path):
    with np.load(io.BytesIO(files.read_bytes(path)), allow_pickle=False) as z:
        state = json.loads(bytes(z["state"]).decode("utf-8"))
        groups = {"model": [], "optimizer": [], "best": []}
        for key in sorted(k for k in z.files if k != "state"):
            groups.setdefault(key.rsplit("_", 1)[0], []).append(z[key])
    return state, groups


class _EpochProgress(keras.callbacks.Callback):
    """Prints 'batch i/n' inside long epochs, at most every ``every`` seconds.

    ``copies``: the model packs this many runs; its loss is their sum, shown as a mean.
    """

    def __init__(self, log, prefix, num_batches, every, copies=1):
        super().__init__()
        self.log, self.prefix, self.num_batches, self.every = log, prefix, num_batches, every
        self.copies = copies

    def on_epoch_begin(self, epoch, logs=None):
        self.t0 = self.last = time.perf_counter()

    def on_train_batch_end(self, batch, logs=None):
        now = time.perf_counter()
        if self.every and now - self.last >= self.every:
            self.last = now
            done = batch + 1
            eta = (now - self.t0) / done * (self.num_batches - done)
            loss = (logs or {}).get("loss")
            label = " loss" if self.copies == 1 else f" mean loss of {self.copies} runs"
            loss_text = f"{label} {float(loss) / self.copies:.4f}" if loss is not None else ""
            self.log(
                f"{self.prefix} batch {done}/{self.num_batches}{loss_text} "
                f"(epoch ETA {_fmt_duration(eta)})"
            )


def _fmt_duration(seconds):
    if seconds is None or not math.isfinite(seconds):
        return "?"
    seconds = int(round(seconds))
    h, rem = divmod(seconds, 3600)
    m, s = divmod(rem, 60)
    return f"{h}h{m:02d}m" if h else (f"{m}m{s:02d}s" if m else f"{s}s")


def resolve_training(settings):
    """The training path a run takes: jit, dtype policy and copies, resolved for this machine.

    ``None`` settings take `keras_attn.training.fast_path`'s choice for the
    current backend and device. Recorded as each record's ``training``.

    Args:
        settings: a `ProtocolSettings`.

    Returns:
        dict with ``jit_compile`` (bool), ``mixed_precision`` (str or None),
        ``copies`` (int), ``backend`` and ``fast_path_reason``.

    Example:
        >>> t = resolve_training(ProtocolSettings(jit_compile=False, copies=2))
        >>> t["jit_compile"], t["copies"], t["mixed_precision"]
        (False, 2, None)
    """
    fast = fast_path()
    jit = fast["jit_compile"] if settings.jit_compile is None else settings.jit_compile
    copies = fast["copies"] if settings.copies is None else settings.copies
    if settings.mixed_precision == "mixed_float16":
        copies = 1  # a shared loss scale would couple packed runs (see ProtocolSettings)
    return {
        "jit_compile": bool(jit),
        "mixed_precision": settings.mixed_precision,
        "copies": int(copies),
        "backend": keras.backend.backend(),
        "fast_path_reason": fast["reason"],
    }


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
        "started_at": _now(),
    }


def _record_epoch(state, epoch, train_loss, train_acc, val_loss, val_acc, seconds, cpu_seconds):
    """Append one epoch's figures to ``state`` and keep its best epoch up to date.

    Returns ``"diverged"`` (a non-finite loss: the run stops here), ``"best"`` (the
    best validation accuracy so far; the first epoch wins ties: keep its weights)
    or ``None``.
    """
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
    if not (math.isfinite(train_loss) and math.isfinite(val_loss)):
        state["diverged"], state["diverged_epoch"] = True, epoch + 1
        return "diverged"
    if state["best_val_accuracy"] is None or val_acc > state["best_val_accuracy"]:
        state["best_epoch"], state["best_val_accuracy"] = epoch + 1, val_acc
        return "best"
    return None


def _epoch_line(prefix, settings, state, eta):
    eta_text = f" | protocol ETA {_fmt_duration(eta())}" if eta else ""
    return (
        f"{prefix} epoch {state['epochs_done']}/{settings.epochs}: train loss "
        f"{state['train_loss'][-1]:.4f} acc {state['train_accuracy'][-1]:.4f} | val loss "
        f"{state['val_loss'][-1]:.4f} acc {state['val_accuracy'][-1]:.4f} (best "
        f"{state['best_val_accuracy']:.4f} @ epoch {state['best_epoch']}) | "
        f"{state['epoch_seconds'][-1]:.1f}s{eta_text}"
    )


def _diverged_line(prefix, state):
    return (
        f"{prefix} epoch {state['epochs_done']}: train loss {state['train_loss'][-1]}, val loss "
        f"{state['val_loss'][-1]}: diverged; stopping this run"
    )


def _build_kwargs(settings, data):
    """What `keras_attn.build` / `keras_attn.get_config` take besides the name, for this data."""
    return {
        "input_shape": list(data.input_shape),
        "num_classes": data.num_classes,
        **settings.model_overrides,
    }


def _build(model_name, settings, data):
    with dtype_policy(settings.mixed_precision):
        return keras_attn.build(model_name, **_build_kwargs(settings, data))


@dataclasses.dataclass(frozen=True)
class _Job:
    """What every run of one `run_one` / `run_group` call shares."""

    model_name: str
    settings: ProtocolSettings
    data: object
    out_dir: str
    sid: str
    training: dict
    save_weights: bool
    log: object


#: Test images whose attention masks each record describes (`_mask_statistics`).
MASK_STATISTICS_IMAGES = 1000


def _mask_statistics(model, data):
    """How much each attention mask of the best weights varies, on the first test images.

    ``None`` for a model without attention blocks. See
    `keras_attn.attention_maps.mask_statistics`.
    """
    from keras_attn.attention_maps import attention_layers, mask_statistics

    if not attention_layers(model):
        return None
    return mask_statistics(model, data.x_test[:MASK_STATISTICS_IMAGES], batch_size=250)


def _finish_run(job, run_index, model, best_values, state):
    """Evaluate the best weights on the test set, save them, write the record; return it."""
    model_name, settings, data, out_dir, sid = (
        job.model_name,
        job.settings,
        job.data,
        job.out_dir,
        job.sid,
    )
    t0 = time.perf_counter()
    test_loss = test_acc = None
    if best_values is not None:
        _assign(model.variables, best_values, "model")
        test_loss, test_acc = _evaluate(model, data.x_test, data.y_test, settings.batch_size)
    test_seconds = time.perf_counter() - t0
    masks = _mask_statistics(model, data) if best_values is not None else None
    weights_rel = None
    if job.save_weights and best_values is not None:
        weights_path = _weights_path(out_dir, sid, model_name, run_index)
        with tempfile.TemporaryDirectory() as tmp:
            local = os.path.join(tmp, "best.weights.h5")
            model.save_weights(local)
            with open(local, "rb") as f:
                files.write_atomic(weights_path, f.read())
        weights_rel = posixpath.join("weights", sid, model_name, f"run-{run_index:04d}.weights.h5")
    fingerprint = data.fingerprint()
    record = {
        "format": RECORD_FORMAT,
        "model": model_name,
        "run": int(run_index),
        "seed": run_seed(settings.base_seed, run_index),
        "settings_id": sid,
        "status": "diverged" if state["diverged"] else "finished",
        "diverged": state["diverged"],
        "diverged_epoch": state["diverged_epoch"],
        "epochs_trained": state["epochs_done"],
        "best_epoch": state["best_epoch"],
        "best_val_accuracy": state["best_val_accuracy"],
        "val_accuracy": state["val_accuracy"],
        "val_loss": state["val_loss"],
        "train_accuracy": state["train_accuracy"],
        "train_loss": state["train_loss"],
        "test_accuracy": test_acc,
        "test_loss": test_loss,
        "weights": weights_rel,
        "trainable_params": keras_attn.count_trainable_params(model),
        "mask_statistics": masks,
        "epoch_seconds": state["epoch_seconds"],
        "epoch_cpu_seconds": state["epoch_cpu_seconds"],
        "test_seconds": test_seconds,
        "wall_time_s": float(sum(state["epoch_seconds"]) + test_seconds),
        "resumed_at_epochs": state["resumed_at_epochs"],
        "started_at": state["started_at"],
        "finished_at": _now(),
        "settings": settings.to_dict(),
        "comparable_settings": settings.comparable(fingerprint),
        "training": job.training,
        "preprocessing": PREPROCESSING,
        "augmentation": AUGMENTATION,
        "model_config": keras_attn.get_config(model_name, **_build_kwargs(settings, data)),
        "data": data.describe(),
        "environment": environment(data.source.get("kind")),
    }
    files.write_json(_record_path(out_dir, sid, model_name, run_index), record)
    acc_text = f"{test_acc:.4f}" if test_acc is not None else "n/a"
    job.log(
        f"[{model_name} run {run_index}] done: test accuracy {acc_text} "
        f"(best epoch {state['best_epoch']}{', DIVERGED' if state['diverged'] else ''}), "
        f"{record['wall_time_s']:.1f}s"
    )
    return record


def _check_run_index(run_index):
    if isinstance(run_index, bool) or not isinstance(run_index, (int, np.integer)) or run_index < 0:
        raise ValueError(f"`run_index` must be an integer >= 0, got {run_index!r}.")


def run_one(
    model_name,
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

    If the record exists already it is returned unchanged. Otherwise: seed
    everything with `run_seed`, build the model, train epoch by epoch (resuming
    from ``OUT/checkpoints/...`` if a previous process was killed), validate
    after each epoch, keep the best-validation weights (first epoch among equal
    accuracies), evaluate them on the test set and write the record atomically.
    A run whose loss becomes NaN or infinite stops there and is recorded with
    ``diverged: true``; its test accuracy comes from the best epoch before the
    divergence, or is ``None`` if there is none.

    The training step is compiled as `resolve_training` says (jit from
    `keras_attn.training.fast_path` unless ``settings.jit_compile`` is set;
    the model built under ``settings.mixed_precision``); the record's
    ``training`` says what was used. `run_group` trains several runs at once.

    Timings in the record: ``epoch_seconds`` (wall time of training plus
    validation, per epoch), ``epoch_cpu_seconds`` (CPU time of the process over
    all its threads: less sensitive to other load on the machine), ``wall_time_s``
    (their sum plus the test evaluation; model building and data loading excluded).

    Args:
        model_name: a name from `keras_attn.list_models`.
        run_index: run number (>= 0).
        settings: a `ProtocolSettings`.
        data: the `keras_attn.data.Dataset` (from `load_protocol_data`).
        out_dir: output folder (local path or ``tf.io.gfile`` path).
        log: callable taking one line of progress text (``None``: silent).
        on_epoch: callable ``on_epoch(model_name, run_index, epoch, seconds)``
            called after every finished epoch (used for protocol-wide ETAs).
        eta: callable returning the seconds left in the whole protocol (or
            ``None``), appended to each epoch line.
        progress_every: seconds between in-epoch progress lines (0: none).
        save_weights: bool, default True. Save the best-validation weights as
            ``OUT/weights/<settings_id>/<model>/run-NNNN.weights.h5`` (about 11 MB
            per run for ``cnn``), named in the record's ``weights``, so the run can
            be exported (`best_run`, `keras_attn.export.export_best`).

    Returns:
        The record (a dict).

    Example:
        >>> data = load_protocol_data(settings)  # doctest: +SKIP
        >>> rec = run_one("cnn", 0, settings, data, "results/demo")  # doctest: +SKIP
        >>> rec["test_accuracy"], rec["best_epoch"]  # doctest: +SKIP
        (0.7012, 9)
    """
    _check_models([model_name])
    _check_run_index(run_index)
    if len(data.y_val) == 0:
        raise ValueError("The protocol needs validation images; got val_size=0.")
    log = log or (lambda line: None)
    sid = settings.settings_id(data.fingerprint())
    record_path = _record_path(out_dir, sid, model_name, run_index)
    ckpt_path = _checkpoint_path(out_dir, sid, model_name, run_index)
    if files.exists(record_path):
        files.remove(ckpt_path)  # left over if a process died between the two steps
        files.prune_empty_dirs(out_dir, "checkpoints", sid, model_name)
        return files.read_json(record_path)

    files.remove_stale_temps(ckpt_path)  # only this run writes these names
    files.remove_stale_temps(record_path)
    seed = run_seed(settings.base_seed, run_index)
    _ensure_runtime(settings)
    training = {**resolve_training(settings), "copies": 1, "packed_runs": None}
    keras.utils.set_random_seed(seed)
    model = _build(model_name, settings, data)
    compile_for_training(
        model, optimizer=_make_optimizer(settings), jit_compile=training["jit_compile"]
    )
    # What Keras runs: it turns XLA off where the model or TF op determinism forbids it.
    training["jit_compile"] = bool(model.jit_compile)
    model.optimizer.build(model.trainable_variables)

    state = _new_state()
    best_values = None
    if files.exists(ckpt_path):
        saved, groups = _load_checkpoint(ckpt_path)
        state = {**state, **saved}
        _assign(model.variables, groups["model"], "model")
        _assign(model.optimizer.variables, groups["optimizer"], "optimizer")
        best_values = groups["best"] or None
        state["resumed_at_epochs"].append(state["epochs_done"])
        log(f"[{model_name} run {run_index}] resuming after epoch {state['epochs_done']}")

    batches = ArrayBatches(data.x_train, data.y_train, settings.batch_size, shuffle=True, seed=seed)
    prefix = f"[{model_name} run {run_index}]"
    for epoch in range(state["epochs_done"], settings.epochs):
        t0, cpu0 = time.perf_counter(), time.process_time()
        batches.set_epoch(epoch)
        callbacks = [keras.callbacks.TerminateOnNaN()]
        if progress_every:
            callbacks.append(
                _EpochProgress(log, f"{prefix} epoch {epoch + 1}", len(batches), progress_every)
            )
        # shuffle=False: Keras would otherwise reorder the batches with Python's global RNG,
        # whose state a resumed process cannot reproduce. ArrayBatches shuffles instead.
        hist = model.fit(batches, epochs=1, shuffle=False, verbose=0, callbacks=callbacks).history
        val_loss, val_acc = _evaluate(model, data.x_val, data.y_val, settings.batch_size)
        outcome = _record_epoch(
            state,
            epoch,
            float(hist["loss"][-1]),
            float(hist.get("accuracy", [float("nan")])[-1]),
            val_loss,
            val_acc,
            time.perf_counter() - t0,
            time.process_time() - cpu0,
        )
        if on_epoch:
            on_epoch(model_name, run_index, epoch, state["epoch_seconds"][-1])
        if outcome == "diverged":
            log(_diverged_line(prefix, state))
            break
        if outcome == "best":
            best_values = _values(model.variables)
        _save_checkpoint(ckpt_path, model, {"best": best_values}, state)
        log(_epoch_line(prefix, settings, state, eta))

    job = _Job(model_name, settings, data, out_dir, sid, training, save_weights, log)
    record = _finish_run(job, run_index, model, best_values, state)
    files.remove(ckpt_path)
    files.prune_empty_dirs(out_dir, "checkpoints", sid, model_name)
    return record


def _group_checkpoint_path(out_dir, settings_id, model, runs):
    name = "group-" + "-".join(f"{r:04d}" for r in runs) + ".npz"
    return files.join(out_dir, "checkpoints", settings_id, model, name)


def _group_checkpoints(out_dir, settings_id, model):
    """``{runs tuple: path}`` of the packed-group checkpoints of ``model``."""
    found = {}
    for path in files.glob_paths(
        files.join(out_dir, "checkpoints", settings_id, model, "group-*.npz")
    ):
        parts = os.path.basename(path)[len("group-") : -len(".npz")].split("-")
        if parts and all(p.isdigit() for p in parts):
            found[tuple(int(p) for p in parts)] = path
    return found


def run_group(
    model_name,
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
    """Train several runs of one model at once, packed in one model; write each run's record.

    The runs are built as `run_one` builds them (same seeds, same initial
    weights), packed with `keras_attn.parallel.pack_models` and trained
    together: each sees its own shuffled batches and its own loss, so each
    trains as if alone (equal to `run_one` within float tolerance; tested).
    Validation, best-epoch choice, test evaluation, weights and records are per
    run and have `run_one`'s format; the record's ``training`` names the packed
    runs, and its ``epoch_seconds`` are the group's epoch time divided by the
    runs still training (each run's share).

    A run that diverges is recorded as diverged at that epoch while the others
    go on. Checkpoints are per group (``OUT/checkpoints/.../group-0000-0001.npz``):
    a killed group resumes as a group. With a single run this is `run_one`.

    Args:
        model_name: a name from `keras_attn.list_models`.
        run_indices: list of distinct run numbers (>= 0).
        settings, data, out_dir, log, on_epoch, eta, progress_every,
            save_weights: as for `run_one`.

    Returns:
        list of records, one per run, in ``run_indices`` order.

    Example:
        >>> recs = run_group("cnn", [0, 1, 2, 3], settings, data, "results/demo")  # doctest: +SKIP
        >>> [r["training"]["packed_runs"] for r in recs][0]  # doctest: +SKIP
        [0, 1, 2, 3]
    """
    from keras_attn.parallel import (
        PackedBatches,
        build_copies,
        compile_packed,
        evaluate_copies,
        pack_models,
    )

    _check_models([model_name])
    runs = list(run_indices)
    for r in runs:
        _check_run_index(r)
    if not runs or len(set(runs)) != len(runs):
        raise ValueError(f"`run_indices` must be distinct run numbers, got {run_indices!r}.")
    kwargs = dict(
        log=log,
        on_epoch=on_epoch,
        eta=eta,
        progress_every=progress_every,
        save_weights=save_weights,
    )
    if len(runs) == 1:
        return [run_one(model_name, runs[0], settings, data, out_dir, **kwargs)]
    if settings.mixed_precision == "mixed_float16":
        raise ValueError("mixed_float16 cannot pack runs (shared loss scale); use run_one.")
    if len(data.y_val) == 0:
        raise ValueError("The protocol needs validation images; got val_size=0.")
    log = log or (lambda line: None)
    sid = settings.settings_id(data.fingerprint())
    record_paths = [_record_path(out_dir, sid, model_name, r) for r in runs]
    ckpt_path = _group_checkpoint_path(out_dir, sid, model_name, runs)
    if all(files.exists(p) for p in record_paths):
        files.remove(ckpt_path)
        files.prune_empty_dirs(out_dir, "checkpoints", sid, model_name)
        return [files.read_json(p) for p in record_paths]
    files.remove_stale_temps(ckpt_path)
    for p in record_paths:
        files.remove_stale_temps(p)
    _ensure_runtime(settings)
    training = {**resolve_training(settings), "copies": len(runs), "packed_runs": runs}
    seeds = [run_seed(settings.base_seed, r) for r in runs]
    with dtype_policy(settings.mixed_precision):
        copies = build_copies(model_name, seeds, **_build_kwargs(settings, data))
    packed = pack_models(copies)
    compile_packed(packed, _make_optimizer(settings), jit_compile=training["jit_compile"])
    training["jit_compile"] = bool(packed.jit_compile)
    packed.optimizer.build(packed.trainable_variables)

    n = len(runs)
    group = {"runs": runs, "epochs_done": 0, "states": [_new_state() for _ in runs]}
    bests = [None] * n
    contiguous = runs == list(range(runs[0], runs[-1] + 1))
    span = f"{runs[0]}-{runs[-1]}" if contiguous else ",".join(map(str, runs))
    prefix = f"[{model_name} runs {span}]"
    if files.exists(ckpt_path):
        group, arrays = _load_checkpoint(ckpt_path)
        _assign(packed.variables, arrays["model"], "model")
        _assign(packed.optimizer.variables, arrays["optimizer"], "optimizer")
        bests = [arrays.get(f"best{i}") or None for i in range(n)]
        for state in group["states"]:
            if not state["diverged"]:
                state["resumed_at_epochs"].append(group["epochs_done"])
        log(f"{prefix} resuming after epoch {group['epochs_done']}")
    states = group["states"]

    batches = PackedBatches(data.x_train, data.y_train, settings.batch_size, seeds)
    for epoch in range(group["epochs_done"], settings.epochs):
        active = [i for i in range(n) if not states[i]["diverged"]]
        if not active:
            break
        t0, cpu0 = time.perf_counter(), time.process_time()
        batches.set_epoch(epoch)
        callbacks = []
        if progress_every:
            callbacks.append(
                _EpochProgress(
                    log, f"{prefix} epoch {epoch + 1}", len(batches), progress_every, copies=n
                )
            )
        # Diverged copies keep stepping (their NaNs cannot reach the others' disjoint
        # weights) but are no longer recorded.
        hist = packed.fit(batches, epochs=1, shuffle=False, verbose=0, callbacks=callbacks).history
        evals = evaluate_copies(packed, data.x_val, data.y_val, settings.batch_size)
        seconds = (time.perf_counter() - t0) / len(active)
        cpu_seconds = (time.process_time() - cpu0) / len(active)
        for i in active:
            state, run = states[i], runs[i]
            outcome = _record_epoch(
                state,
                epoch,
                float(hist[f"copy{i}_loss"][-1]),
                float(hist.get(f"copy{i}_accuracy", [float("nan")])[-1]),
                evals[i]["loss"],
                evals[i]["accuracy"],
                seconds,
                cpu_seconds,
            )
            if on_epoch:
                on_epoch(model_name, run, epoch, seconds)
            if outcome == "diverged":
                log(_diverged_line(f"[{model_name} run {run}]", state))
                continue
            if outcome == "best":
                bests[i] = _values(copies[i].variables)
            log(_epoch_line(f"[{model_name} run {run}]", settings, state, eta))
        group["epochs_done"] = epoch + 1
        _save_checkpoint(ckpt_path, packed, {f"best{i}": v for i, v in enumerate(bests)}, group)

    job = _Job(model_name, settings, data, out_dir, sid, training, save_weights, log)
    records = []
    for i, run in enumerate(runs):
        if files.exists(record_paths[i]):  # written before a kill that left the checkpoint
            records.append(files.read_json(record_paths[i]))
            continue
        records.append(_finish_run(job, run, copies[i], bests[i], states[i]))
    files.remove(ckpt_path)
    files.prune_empty_dirs(out_dir, "checkpoints", sid, model_name)
    return records


def _now():
    return datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds")


# --------------------------------------------------------------------------- time budget


def parse_duration(text):
    """Seconds in a duration: a number of seconds, or with a unit: ``"90s"``, ``"8m"``, ``"2h"``.

    Units combine (``"1h30m"``). ``None`` gives ``None`` (no budget).

    Example:
        >>> parse_duration("8m"), parse_duration("1h30m"), parse_duration(45)
        (480.0, 5400.0, 45.0)
    """
    if text is None:
        return None
    if isinstance(text, (int, float)) and not isinstance(text, bool):
        seconds = float(text)
    else:
        import re

        s = str(text).strip().lower()
        parts = re.fullmatch(r"(?:(\d+(?:\.\d+)?)h)?(?:(\d+(?:\.\d+)?)m)?(?:(\d+(?:\.\d+)?)s?)?", s)
        if not s or parts is None or not any(parts.groups()):
            raise ValueError(
                f"A time budget must be seconds or a duration such as '90s', '8m', '2h' or "
                f"'1h30m', got {text!r}."
            )
        h, m, sec = (float(g) if g else 0.0 for g in parts.groups())
        seconds = 3600 * h + 60 * m + sec
    if not seconds > 0 or not math.isfinite(seconds):
        raise ValueError(f"A time budget must be positive, got {text!r}.")
    return seconds


_clock = time.monotonic  # the budget's clock (tests replace it)


class _Budget:
    """Decides whether the next group of runs fits in what is left of a time budget.

    A group's time is estimated, in this order, from groups of the same model
    finished in this process (their whole wall time, build and compilation
    included), from the records of that model already in the output folder
    written on the same device and backend, or from another measured model
    scaled by the ratio of multiply-accumulates per image. With no estimate at
    all the group starts: nothing has been measured yet.
    """

    MARGIN = 1.15  # records leave out model building and compilation
    # Scaling by MACs misses element-wise work: on an H200 the conv-AE variants' step
    # took 1.9-2.0x cnn's for 1.17x its MACs (docs/performance.md).
    MAC_MARGIN = 2.0

    def __init__(self, seconds):
        self.deadline = _clock() + seconds
        self.measured = {}  # model -> seconds per epoch of a group of `size` runs
        self.prior = {}  # model -> seconds per run-epoch, from existing records
        self._macs = {}

    def left(self):
        return self.deadline - _clock()

    def add_records(self, records, backend, device):
        """Learn from finished records made on this device and backend."""
        per = {}
        for r in records:
            env = r.get("environment") or {}
            if env.get("backend") != backend or env.get("device") != device:
                continue
            epochs = r.get("epochs_trained") or 0
            if epochs and r.get("wall_time_s"):
                per.setdefault(r["model"], []).append(r["wall_time_s"] / epochs)
        for model, values in per.items():
            self.prior[model] = self.MARGIN * float(np.mean(values))

    def record(self, model, size, epochs, seconds):
        """A group of ``size`` runs of ``model`` trained ``epochs`` epochs in ``seconds``."""
        if epochs > 0:
            self.measured[model] = (seconds / epochs, size)

    def _macs_of(self, model, build_kwargs):
        if model not in self._macs:
            from keras_attn.flops import count_macs

            self._macs[model] = count_macs(keras_attn.build(model, **build_kwargs))
        return self._macs[model]

    def estimate(self, model, size, epochs, build_kwargs):
        """Seconds a group of ``size`` runs of ``model`` needs for ``epochs`` epochs, or None."""
        if model in self.measured:
            per_epoch, measured_size = self.measured[model]
            return per_epoch * epochs * max(1.0, size / measured_size)
        if model in self.prior:
            return self.prior[model] * size * epochs
        known = [(m, per_epoch / n) for m, (per_epoch, n) in self.measured.items()]
        known += list(self.prior.items())
        if not known:
            return None
        per_mac = max(s / self._macs_of(m, build_kwargs) for m, s in known)
        return self.MAC_MARGIN * per_mac * self._macs_of(model, build_kwargs) * size * epochs


# --------------------------------------------------------------------------- protocol


def _check_settings_folder(out_dir, settings, sid, fingerprint, allow_mixed):
    """Write OUT/settings/<sid>.json; refuse a folder holding other settings' work."""
    mine = settings.comparable(fingerprint)
    for path in files.glob_paths(files.join(out_dir, "settings", "*.json")):
        other_id = os.path.basename(path)[: -len(".json")]
        if other_id == sid or allow_mixed:
            continue
        has_work = files.glob_paths(files.join(out_dir, "records", other_id, "*", "*.json")) or (
            files.glob_paths(files.join(out_dir, "checkpoints", other_id, "*", "*.npz"))
        )
        if not has_work:
            continue
        other = files.read_json(path).get("comparable_settings", {})
        diff = {
            k: (other.get(k), mine.get(k))
            for k in sorted(set(other) | set(mine))
            if other.get(k) != mine.get(k)
        }
        diff_text = "; ".join(f"{k}: {a!r} there, {b!r} now" for k, (a, b) in diff.items())
        raise ValueError(
            f"Output folder {out_dir} holds results of other settings (id {other_id}); "
            f"differences: {diff_text}. Use another output folder, or pass "
            f"allow_mixed=True (--allow-mixed) to keep both (the report then shows them "
            f"as separate groups)."
        )
    path = files.join(out_dir, "settings", f"{sid}.json")
    if not files.exists(path):
        doc = {
            "settings_id": sid,
            "comparable_settings": mine,
            "settings": settings.to_dict(),
            "created_at": _now(),
        }
        files.write_json(path, doc)


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
):
    """Run every (model, run) of the protocol, or of one shard, into ``out_dir``.

    Finished runs (records present) are skipped; an interrupted run resumes from
    its checkpoint. Prints which model and run, each epoch, and an ETA for the
    whole protocol (this shard) from the epoch times measured so far.

    Args:
        models: model names (list or comma-separated string); ``None``: all.
        settings: a `ProtocolSettings`.
        out_dir: output folder (local path or ``tf.io.gfile`` path such as ``gs://...``).
        data: a loaded `keras_attn.data.Dataset`; ``None`` loads ``settings.data``.
        shard: ``"I/N"`` (1-based) to run only every N-th task; ``None``: all.
        allow_mixed: allow an output folder that holds records of other settings.
        log: callable for progress lines (``print`` by default; ``None``: silent).
        progress_every: seconds between in-epoch progress lines (0: none).
        save_weights: save each run's best-validation weights (see `run_one`).
        time_budget: seconds (or a duration such as ``"8m"``, see `parse_duration`)
            after which no new run or packed group is started: one starts only
            when its estimated time fits in what is left. A started run is never
            cut by the budget. Rerunning continues with the runs left.

    Returns:
        The records of this shard's finished tasks, in task order (fewer than
        the tasks when the time budget stopped it early).

    Example:
        >>> settings = ProtocolSettings(runs=2, epochs=2, data="cifar10-folder")  # doctest: +SKIP
        >>> records = run_protocol(["cnn", "cnn_eca"], settings, "results/demo")  # doctest: +SKIP
    """
    log = log or (lambda line: None)
    budget_seconds = parse_duration(time_budget)
    budget = _Budget(budget_seconds) if budget_seconds else None
    tasks = plan_tasks(models, settings.runs, shard)
    _ensure_runtime(settings)
    if data is None:
        t0 = time.perf_counter()
        data = load_protocol_data(settings)
        d = data.describe()
        log(
            f"data: {d['source']['kind']} {d['source']['location']}: "
            f"{d['counts']} ({time.perf_counter() - t0:.1f}s)"
        )
    fingerprint = data.fingerprint()
    sid = settings.settings_id(fingerprint)
    _check_settings_folder(out_dir, settings, sid, fingerprint, allow_mixed)

    done = {t for t in tasks if files.exists(_record_path(out_dir, sid, *t))}
    pending = [t for t in tasks if t not in done]
    log(
        f"protocol: {len(tasks)} runs in this shard ({parse_shard(shard)[0]}/"
        f"{parse_shard(shard)[1]}), {len(done)} already finished, {len(pending)} to go; "
        f"{settings.epochs} epochs each; settings id {sid}; output {out_dir}"
    )
    training = resolve_training(settings)
    groups = _plan_groups(pending, training["copies"], out_dir, sid)
    why = f" (fast path: {training['fast_path_reason']})" if settings.jit_compile is None else ""
    log(
        f"training: {training['backend']}, jit {'on' if training['jit_compile'] else 'off'}{why}"
        f", {training['mixed_precision'] or 'float32'}, up to {training['copies']} run(s) of a "
        f"model at once ({len(groups)} group(s))"
    )
    times = {}  # model -> list of epoch seconds measured in this process
    remaining = {t: settings.epochs for t in pending}

    def on_epoch(model_name, run_index, epoch, seconds):
        times.setdefault(model_name, []).append(seconds)
        remaining[(model_name, run_index)] = settings.epochs - (epoch + 1)

    found = {t: files.read_json(_record_path(out_dir, sid, *t)) for t in done}
    if budget:
        existing = [
            files.read_json(p)
            for p in files.glob_paths(files.join(out_dir, "records", sid, "*", "run-*.json"))
        ]
        budget.add_records(existing, training["backend"], device_description())
    for model_name, runs in groups:
        if budget:
            epochs_left = _epochs_left(out_dir, sid, model_name, runs, settings.epochs)
            need = budget.estimate(
                model_name, len(runs), epochs_left, _build_kwargs(settings, data)
            )
            left = budget.left()
            if left <= 0 or (need is not None and need > left):
                n_left = sum(1 for t in pending if t not in found)
                need_text = "?" if need is None else _fmt_duration(need)
                log(
                    f"time budget: stopping before {model_name} runs {runs} (estimated "
                    f"{need_text}, {_fmt_duration(max(left, 0))} left); {n_left} run(s) "
                    "left: rerun the same command to continue"
                )
                break
        group_t0 = time.perf_counter()
        positions = [pending.index((model_name, r)) + 1 for r in runs if (model_name, r) in pending]
        seeds = [run_seed(settings.base_seed, r) for r in runs]
        if len(runs) == 1:
            what = f"run {runs[0] + 1}/{settings.runs} (seed {seeds[0]})"
            where = f"task {positions[0]}/{len(pending)}"
        else:
            what = (
                f"runs {', '.join(str(r + 1) for r in runs)}/{settings.runs} packed (seeds {seeds})"
            )
            where = f"tasks {', '.join(map(str, positions))}/{len(pending)}"
        log(
            f"=== {model_name} {what} | {where} "
            f"| protocol ETA {_fmt_duration(_eta(remaining, times))}"
        )
        recs = run_group(
            model_name,
            runs,
            settings,
            data,
            out_dir,
            log=log,
            on_epoch=on_epoch,
            eta=lambda: _eta(remaining, times),
            progress_every=progress_every,
            save_weights=save_weights,
        )
        for run, rec in zip(runs, recs):
            remaining[(model_name, run)] = 0
            found[(model_name, run)] = rec
        if budget:
            budget.record(model_name, len(runs), epochs_left, time.perf_counter() - group_t0)
    return [found[t] for t in tasks if t in found]


def _epochs_left(out_dir, sid, model, runs, epochs):
    """Epochs a group still has to train: fewer when it resumes from a checkpoint."""
    path = (
        _checkpoint_path(out_dir, sid, model, runs[0])
        if len(runs) == 1
        else _group_checkpoint_path(out_dir, sid, model, runs)
    )
    if not files.exists(path):
        return epochs
    state, _ = _load_checkpoint(path)
    return max(epochs - int(state.get("epochs_done", 0)), 1)


def _plan_groups(pending, copies, out_dir, sid):
    """The pending ``(model, run)`` tasks as ``(model, [runs])`` groups of at most ``copies``.

    Interrupted work resumes as it was started: a run with its own checkpoint
    resumes alone, a packed group with a checkpoint resumes as that group (when
    every unfinished run of it is pending here). Other runs of a model are
    packed in task order. Groups come in the order of their first task.
    """
    pending_set = set(pending)
    position = {t: i for i, t in enumerate(pending)}
    taken, groups = set(), []
    for model in dict.fromkeys(m for m, _ in pending):
        for runs, path in sorted(_group_checkpoints(out_dir, sid, model).items()):
            todo = [r for r in runs if (model, r) in pending_set]
            if not todo:
                if all(files.exists(_record_path(out_dir, sid, model, r)) for r in runs):
                    files.remove(path)  # finished: left over from a kill after the records
                continue
            members = {(model, r) for r in runs}
            unfinished = {
                (model, r) for r in runs if not files.exists(_record_path(out_dir, sid, model, r))
            }
            if unfinished <= pending_set and not taken & members:
                groups.append((model, list(runs)))
                taken |= members
        rest = [r for m, r in pending if m == model and (m, r) not in taken]
        for r in rest:
            if files.exists(_checkpoint_path(out_dir, sid, model, r)):
                groups.append((model, [r]))
                taken.add((model, r))
        rest = [r for r in rest if (model, r) not in taken]
        groups += [(model, rest[i : i + copies]) for i in range(0, len(rest), copies)]
    return sorted(
        groups, key=lambda g: min(position[(g[0], r)] for r in g[1] if (g[0], r) in position)
    )


def best_run(out_dir, model_name, settings_id=None):
    """The best run of a model in a protocol folder: highest validation accuracy.

    The choice never looks at test accuracy. Ties go to the lowest run number.
    Only finished runs that saved weights count.

    Args:
        out_dir: the protocol's output folder.
        model_name: a model with records there.
        settings_id: which settings' records, when the folder holds several.

    Returns:
        ``(record, weights_path)``: the run's record and the full path of its
        best-validation weights (``.weights.h5``).

    Example:
        >>> record, weights = best_run("results/ae", "cnn_conv_ae")  # doctest: +SKIP
        >>> record["best_val_accuracy"], weights  # doctest: +SKIP
        (0.7134, 'results/ae/weights/3f2a.../cnn_conv_ae/run-0005.weights.h5')
    """
    ids = sorted(
        os.path.basename(p.rstrip("/"))
        for p in files.glob_paths(files.join(out_dir, "records", "*"))
    )
    if not ids:
        raise ValueError(f"No protocol records in {out_dir!r} (expected {out_dir}/records/...).")
    if settings_id is None:
        if len(ids) > 1:
            raise ValueError(
                f"{out_dir!r} holds records of several settings {ids}; pass settings_id."
            )
        settings_id = ids[0]
    elif settings_id not in ids:
        raise ValueError(f"No records of settings {settings_id!r} in {out_dir!r}; found {ids}.")
    paths = files.glob_paths(files.join(out_dir, "records", settings_id, model_name, "run-*.json"))
    if not paths:
        have = sorted(
            os.path.basename(p.rstrip("/"))
            for p in files.glob_paths(files.join(out_dir, "records", settings_id, "*"))
        )
        raise ValueError(
            f"No records of model {model_name!r} in {out_dir!r}; models with records: {have}."
        )
    records = [files.read_json(p) for p in paths]
    usable = [r for r in records if r.get("weights") and r.get("best_val_accuracy") is not None]
    if not usable:
        raise ValueError(
            f"None of the {len(records)} runs of {model_name!r} in {out_dir!r} saved weights "
            "(trained with save_weights=False / --no-weights, or all diverged); rerun them "
            "with weights to export."
        )
    best = max(usable, key=lambda r: (r["best_val_accuracy"], -r["run"]))
    return best, files.join(out_dir, *best["weights"].split("/"))


def _eta(remaining, times):
    """Seconds left: remaining epochs x mean epoch time (per model where measured)."""
    if not times:
        return None
    overall = float(np.mean([s for v in times.values() for s in v]))
    return sum(n * float(np.mean(times.get(m, [overall]))) for (m, _), n in remaining.items())
