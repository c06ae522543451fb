"""The protocol's settings: what a run is trained with, and the named presets."""

from __future__ import annotations

import dataclasses
import hashlib
import json

import keras

from keras_attn._checks import check_int
from keras_attn.data import DataSettings
from keras_attn.precision import check_precision
from keras_attn.protocol.jax_program import EPOCH_FORMS, GRAD_FORMS
from keras_attn.training import check_jit_compile, check_mixed_precision, fast_path

__all__ = [
    "AUGMENTATION",
    "OPTIMIZERS",
    "PREPROCESSING",
    "PRESETS",
    "TRAINERS",
    "ProtocolSettings",
    "make_optimizer",
    "resolve_training",
    "run_seed",
]

RECORD_FORMAT = 1
OPTIMIZERS = ("sgd", "adam", "adamw", "rmsprop")
PREPROCESSING = "none: uint8 pixels cast to float32, 0..255; the model rescales by 1/255"
AUGMENTATION = "none"
#: The training loops: ``"fit"`` (Keras' ``model.fit``, every backend) and ``"jax"``
#: (`keras_attn.protocol.jax_trainer`: fused epochs, a group's runs vectorised).
TRAINERS = ("fit", "jax")

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
            (off on a TensorFlow CPU, on for JAX). Not part of the settings id:
            it changes results only within float tolerance.
        mixed_precision: ``None`` (default, float32), ``"mixed_bfloat16"`` or
            ``"mixed_float16"``: the dtype policy the models are built under.
            Part of the settings id when set (it changes results).
        group_size: runs of one model the JAX trainer trains at once, vectorised;
            ``None`` (default): `fast_path`'s choice (1 on a CPU, 16 on a GPU).
            Each run's arithmetic is its own, so results equal runs trained alone
            within float tolerance, and it is not part of the settings id. The
            ``model.fit`` trainer trains one run at a time.
        precision: ``None`` (default: the backend's own arithmetic, float32 on
            a CPU, TF32 under JAX on Ampere/Hopper GPUs), ``"float32"``,
            ``"tf32"`` or ``"bf16"`` (the same as ``mixed_precision=
            "mixed_bfloat16"``); see `keras_attn.precision`. Part of the
            settings id when given.
        trainer: ``None`` (default: ``"jax"`` on the JAX backend, else
            ``"fit"``), ``"fit"`` or ``"jax"`` (`TRAINERS`). Not part of the
            settings id: both compute the same steps (tested).
        grad_form, epoch_form: how the JAX trainer computes
            (`keras_attn.protocol.jax_program.GRAD_FORMS`, ``EPOCH_FORMS``);
            ``None`` (default): the fast forms for the device. Not part of the
            settings id: the forms compute the same steps (tested).
        checkpoint_every: seconds between a group's checkpoints (taken after an
            epoch once this much time has passed; 0: after every epoch). Default 60.
        compile_cache: a folder for XLA's persistent compilation cache (JAX), so a
            later process skips compiling the same models; ``None``: none.

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
    group_size: int | None = None
    precision: str | None = None
    trainer: str | None = None
    grad_form: str | None = None
    epoch_form: str | None = None
    checkpoint_every: float = 60.0
    compile_cache: str | None = None

    def __post_init__(self):
        def _int(name, low, allow_none=False):
            setattr(self, name, check_int(name, getattr(self, name), low, allow_none=allow_none))

        _int("runs", 1)
        _int("epochs", 1)
        _int("batch_size", 1)
        _int("base_seed", 0)
        _int("val_size", 1)
        _int("split_seed", 0)
        for name in ("train_limit", "val_limit", "test_limit", "threads", "group_size"):
            _int(name, 1, allow_none=True)
        self.jit_compile = check_jit_compile(self.jit_compile)
        self.mixed_precision = check_mixed_precision(self.mixed_precision)
        self.precision = check_precision(self.precision)
        if self.precision == "bf16" or self.mixed_precision == "mixed_bfloat16":
            if self.precision not in (None, "bf16") or self.mixed_precision == "mixed_float16":
                raise ValueError(
                    f"`precision={self.precision!r}` contradicts "
                    f"`mixed_precision={self.mixed_precision!r}`; give one of them."
                )
            self.precision, self.mixed_precision = "bf16", "mixed_bfloat16"
        elif self.precision and self.mixed_precision:
            raise ValueError(
                f"`precision={self.precision!r}` contradicts "
                f"`mixed_precision={self.mixed_precision!r}`; give one of them."
            )
        if self.trainer is not None and self.trainer not in TRAINERS:
            raise ValueError(f"`trainer` must be None or one of {TRAINERS}, got {self.trainer!r}.")
        for name, valid in (("grad_form", GRAD_FORMS), ("epoch_form", EPOCH_FORMS)):
            if getattr(self, name) is not None and getattr(self, name) not in valid:
                raise ValueError(
                    f"`{name}` must be None (the device's fast form) or one of {valid}, "
                    f"got {getattr(self, name)!r}."
                )
        every = self.checkpoint_every
        if isinstance(every, bool) or not isinstance(every, (int, float)) or not every >= 0:
            raise ValueError(f"`checkpoint_every` must be seconds >= 0, got {every!r}.")
        self.checkpoint_every = float(every)
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
        if self.precision in ("float32", "tf32"):  # bf16 is mixed_precision above
            d["precision"] = self.precision
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
        "on 2,000 train / 500 val / 1,000 test images",
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


def resolve_training(settings):
    """The training path a run takes: trainer, jit, dtype policy and group size, resolved here.

    ``None`` settings take `keras_attn.training.fast_path`'s choice for the
    current backend and device. Recorded as each record's ``training``.

    Args:
        settings: a `ProtocolSettings`.

    Returns:
        dict with ``jit_compile`` (bool), ``mixed_precision`` (str or None),
        ``group_size`` (int: runs trained at once; 1 for ``model.fit``), ``backend``,
        ``fast_path_reason``, ``trainer`` (``"fit"`` or ``"jax"``) and ``precision``
        (the setting, or ``"default"``).

    Example:
        >>> t = resolve_training(ProtocolSettings(jit_compile=False, trainer="fit"))
        >>> t["jit_compile"], t["group_size"], t["mixed_precision"], t["trainer"]
        (False, 1, None, 'fit')
    """
    fast = fast_path()
    jit = fast["jit_compile"] if settings.jit_compile is None else settings.jit_compile
    backend = keras.backend.backend()
    trainer = settings.trainer
    if trainer is None:  # mixed_float16 needs Keras' loss scaling: model.fit
        jax_ok = backend == "jax" and settings.mixed_precision != "mixed_float16"
        trainer = "jax" if jax_ok else "fit"
    elif trainer == "jax" and backend != "jax":
        raise ValueError(f"trainer='jax' needs the JAX backend; this is {backend!r}: use 'fit'.")
    elif trainer == "jax" and settings.mixed_precision == "mixed_float16":
        raise ValueError("trainer='jax' has no loss scaling for mixed_float16; use 'fit'.")
    jax_only = {k: getattr(settings, k) for k in ("group_size", "grad_form", "epoch_form")}
    if trainer != "jax" and any(v not in (None, 1) for v in jax_only.values()):
        given = ", ".join(f"{k}={v!r}" for k, v in jax_only.items() if v not in (None, 1))
        raise ValueError(
            f"{given}: a setting of the JAX trainer, and this run trains with model.fit "
            f"(trainer {trainer!r} on {backend!r}); use the JAX backend, or leave it unset."
        )
    group_size = 1
    if trainer == "jax":
        jit = True  # the JAX trainer compiles its steps
        group_size = fast["group_size"] if settings.group_size is None else settings.group_size
    return {
        "jit_compile": bool(jit),
        "mixed_precision": settings.mixed_precision,
        "group_size": int(group_size),
        "backend": backend,
        "fast_path_reason": fast["reason"],
        "trainer": trainer,
        "precision": settings.precision or "default",
    }


def make_optimizer(settings):
    """The Keras optimizer ``settings`` name, with its learning rate (and SGD momentum).

    Example:
        >>> make_optimizer(ProtocolSettings(optimizer="adam")).name
        'adam'
    """
    lr = settings.learning_rate
    if settings.optimizer == "sgd":
        return keras.optimizers.SGD(learning_rate=lr, momentum=settings.momentum)
    return {
        "adam": keras.optimizers.Adam,
        "adamw": keras.optimizers.AdamW,
        "rmsprop": keras.optimizers.RMSprop,
    }[settings.optimizer](learning_rate=lr)
