"""The protocol's settings: what a run is trained with, and the named presets.

Each setting is declared once (`keras_attn._fields.setting`): its default, help, flag and
whether it enters the settings id. ``keras-attn protocol --help``, the table in
docs/protocol.md and every record's ``settings`` are made from these declarations.
Nothing here imports Keras, so a command checks its settings before a backend loads.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json

from keras_attn._checks import did_you_mean
from keras_attn._fields import check_fields, default_of, setting
from keras_attn.data.augment import AUGMENTATIONS, PAD_MODES
from keras_attn.data.sources import DataSettings

__all__ = [
    "PRECISIONS",
    "PRESETS",
    "RECIPES",
    "ProtocolSettings",
    "load_protocol_data",
    "recipe_settings",
    "run_seed",
]

RECORD_FORMAT = 1
OPTIMIZERS = ("sgd", "adam", "adamw", "rmsprop")
PREPROCESSING = "none: uint8 pixels cast to float32, 0..255; the model rescales by 1/255"
#: How the learning rate moves over training (`keras_attn.protocol.recipe.make_optimizer`).
SCHEDULES = ("constant", "step", "cosine", "warmup_cosine", "onecycle")
#: Weight decay as an L2 term in the gradient (coupled) or shrinking the weights (decoupled).
DECAY_MODES = ("coupled", "decoupled")
#: The training loops: ``"fit"`` (Keras' ``model.fit``, every backend) and ``"jax"``
#: (`keras_attn.protocol.jax_trainer`: a group's runs vectorised).
TRAINERS = ("fit", "jax")
#: The arithmetic a run may ask for (``None``: the backend's default).
PRECISIONS = ("float32", "tf32", "bf16", "fp16")
#: The Keras dtype policy of each mixed precision.
POLICIES = {"bf16": "mixed_bfloat16", "fp16": "mixed_float16"}
#: How the JAX trainer takes a group's gradient (`keras_attn.protocol.jax_program`).
GRAD_FORMS = ("per_run", "summed")
#: How the JAX trainer runs an epoch.
EPOCH_FORMS = ("scan", "steps")


@dataclasses.dataclass
class ProtocolSettings(DataSettings):
    """Every setting of the protocol; stored with each record.

    The data settings (`keras_attn.data.DataSettings`), then the training's. Defaults
    follow the study where it says something (16 runs, 10 epochs, learning rate 0.1,
    5,000 validation images); where it is silent they are assumptions, marked so:
    plain SGD without momentum, batch size 128, no augmentation, no preprocessing
    beyond the model's 1/255 rescaling. The execution settings (threads, the trainer
    and its forms, jit, checkpoints) are recorded but are not part of the settings id:
    they change results only within float tolerance.

    Example:
        >>> s = ProtocolSettings(runs=4, epochs=2, data="/data/cifar10-folder")
        >>> s.runs, s.learning_rate, len(s.settings_id("abc"))
        (4, 0.1, 16)
    """

    runs: int = setting(16, "trainings per model, each with its own seed (study: 16)", low=1)
    epochs: int = setting(10, "epochs per run (study: 10)", low=1, comparable=True)
    optimizer: str = setting("sgd", "the optimizer (assumed: sgd)", choices=OPTIMIZERS,
                             comparable=True)  # fmt: skip
    learning_rate: float = setting(0.1, "learning rate, > 0 (study: 0.1)", flag="--lr", low=0,
                                   comparable=True)  # fmt: skip
    momentum: float = setting(0.0, "SGD momentum (assumed: 0; sgd only)", low=0, high=1,
                              comparable=True)  # fmt: skip
    batch_size: int = setting(128, "training batch size (assumed: 128)", low=1, comparable=True)
    base_seed: int = setting(0, "base seed: run r uses seed base_seed + r", flag="--seed",
                             low=0, comparable=True)  # fmt: skip
    model_overrides: dict = setting(
        {},
        "model config override for every model, VALUE as JSON (e.g. --override 'sites=[1,3]')",
        flag="--override",
        comparable=True,
    )
    nesterov: bool = setting(False, "Nesterov momentum (sgd)", comparable="set")
    weight_decay: float = setting(0.0, "weight decay of every trainable variable", low=0,
                                  comparable="set")  # fmt: skip
    weight_decay_mode: str = setting(
        "coupled",
        "coupled: an L2 term added to each gradient, before momentum (He et al. 2016); "
        "decoupled: the weights shrink by learning rate x decay each step (Keras' "
        "weight_decay, as AdamW)",
        choices=DECAY_MODES,
        comparable="set",
    )
    schedule: str = setting(
        "constant",
        "learning-rate schedule: constant; step (times --step-factor at each of "
        "--step-at, fractions of training); cosine; warmup_cosine (linear warm-up over "
        "--warmup, then cosine); onecycle (linear up over --warmup, then linear to 0)",
        choices=SCHEDULES,
        comparable="set",
    )
    step_at: list = setting([0.5, 0.75], "step schedule: fractions of training where the "
                            "learning rate drops", low=0, high=1, comparable="set")  # fmt: skip
    step_factor: float = setting(0.1, "step schedule: the factor at each drop", low=0,
                                 comparable="set")  # fmt: skip
    warmup: float = setting(0.0, "warmup_cosine and onecycle: the fraction of training "
                            "spent warming up", low=0, high=1, comparable="set")  # fmt: skip
    label_smoothing: float = setting(0.0, "label smoothing of the cross-entropy", low=0, high=1,
                                     comparable="set")  # fmt: skip
    augmentation: str = setting("none", "what each training image goes through every epoch "
                                "(flips and crops drawn from the run's seed)",
                                choices=AUGMENTATIONS, comparable=True)  # fmt: skip
    crop_padding: int = setting(4, "crop: pixels of padding on each side", low=1,
                                comparable="set")  # fmt: skip
    pad_mode: str = setting("zero", "crop: how the padding is filled", choices=PAD_MODES,
                            comparable="set")  # fmt: skip
    deterministic: bool = setting(True, "deterministic ops on TensorFlow and PyTorch "
                                  "(--no-deterministic: off, faster on some GPUs)",
                                  flag="--no-deterministic", comparable=True)  # fmt: skip
    precision: str | None = setting(
        None,
        "arithmetic of convolutions and matrix products: float32, tf32 (TF32 tensor cores "
        "where the GPU has them), bf16 or fp16 (Keras' mixed bfloat16 / float16 policies); "
        "default: the backend's own (float32 on a CPU, TF32 under JAX on Ampere/Hopper GPUs)",
        choices=PRECISIONS,
        comparable="set",
    )
    threads: int | None = setting(None, "CPU threads (default: all cores)", low=1)
    jit_compile: bool | None = setting(
        None,
        "jit-compile training steps with XLA (default: on for JAX and TensorFlow on a GPU, "
        "off on a TensorFlow CPU where it measured slower)",
        flag=("--jit", "--no-jit"),
    )
    trainer: str | None = setting(
        None,
        "training loop: fit (model.fit, one run at a time) or jax (a group of runs "
        "vectorised; the default on the JAX backend)",
        choices=TRAINERS,
    )
    group_size: int | None = setting(
        None,
        "runs of one model the JAX trainer trains at once (default: 1 on a CPU, 16 on a GPU)",
        low=1,
    )
    grad_form: str | None = setting(
        None,
        "JAX trainer: each run's gradient inside the vmap (per_run, fast on a CPU) or the "
        "summed losses' gradient (summed: cuDNN's kernels on a GPU); default: the device's",
        choices=GRAD_FORMS,
    )
    epoch_form: str | None = setting(
        None,
        "JAX trainer: an epoch as one compiled scan (scan, a GPU) or one compiled step per "
        "batch (steps, a CPU); default: the device's",
        choices=EPOCH_FORMS,
    )
    checkpoint_every: float = setting(
        60.0, "seconds between a group's checkpoints, taken after an epoch (0: every epoch)",
        low=0,
    )  # fmt: skip
    compile_cache: str | None = setting(
        None, "keep XLA's compiled programs in this folder (JAX), so a later process skips "
        "compiling"
    )  # fmt: skip

    def __post_init__(self):
        check_fields(self)
        if not self.learning_rate > 0:
            raise ValueError(f"`learning_rate` must be a number > 0, got {self.learning_rate!r}.")
        for name in ("momentum", "nesterov"):
            if getattr(self, name) and self.optimizer != "sgd":
                raise ValueError(
                    f"`{name}`={getattr(self, name)} applies to optimizer 'sgd' only, "
                    f"not {self.optimizer!r}; leave it unset."
                )
        if self.nesterov and not self.momentum:
            raise ValueError("`nesterov=True` needs `momentum` > 0.")

    @classmethod
    def from_dict(cls, values):
        """The settings a record's ``settings`` hold, whichever version wrote it: names
        that are no longer settings (``copies``) are left out, and an older record's
        ``mixed_precision`` policy is its ``precision``.

        Example:
            >>> old = {"mixed_precision": "mixed_bfloat16", "copies": 8}
            >>> ProtocolSettings.from_dict(old).precision
            'bf16'
        """
        names = {f.name for f in dataclasses.fields(cls)}
        kept = {k: v for k, v in values.items() if k in names}
        policy = values.get("mixed_precision")
        if policy and not kept.get("precision"):
            kept["precision"] = {v: k for k, v in POLICIES.items()}[policy]
        return cls(**kept)

    @property
    def mixed_precision(self):
        """The Keras dtype policy the models are built under: ``None`` (float32),
        ``"mixed_bfloat16"`` or ``"mixed_float16"``."""
        return POLICIES.get(self.precision)

    def data_settings(self):
        """The data part of these settings as a `keras_attn.data.DataSettings`.

        Example:
            >>> ProtocolSettings(data="tfds:mnist", val_size=100).data_settings().flags()
            ['--dataset', 'mnist', '--val-size', '100']
        """
        fields = [f.name for f in dataclasses.fields(DataSettings)]
        return DataSettings(**{name: getattr(self, name) for name in fields})

    def to_dict(self) -> dict:
        """All settings as a JSON-able dict (what each record stores)."""
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
        d = {}
        for field in dataclasses.fields(self):
            flag = field.metadata.get("comparable")
            value = getattr(self, field.name)
            if flag is True or (flag == "set" and value != default_of(field)):
                d[field.name] = value
        if self.precision in POLICIES:  # recorded as its dtype policy, as ids always had it
            del d["precision"]
            d["mixed_precision"] = self.mixed_precision
        d["data_fingerprint"] = data_fingerprint
        d["preprocessing"] = PREPROCESSING
        return json.loads(json.dumps(d, sort_keys=True))

    @property
    def augmentation_spec(self):
        """``(kind, padding, pad_mode)`` for `keras_attn.data.ArrayBatches`, or ``None``."""
        if self.augmentation == "none":
            return None
        return (self.augmentation, self.crop_padding, self.pad_mode)

    def settings_id(self, data_fingerprint) -> str:
        """A 16-hex-digit id of `comparable`."""
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
`ProtocolSettings` overrides. A recipe, then command-line flags, override a preset."""

RECIPES = {
    "study": {
        "description": "the study's training: plain SGD at 0.1, batch 128, a constant learning "
        "rate, no weight decay, no augmentation",
        "settings": {},
    },
    "resnet-cifar": {
        "description": "He et al. 2016 (section 4.2, CIFAR-10): SGD with momentum 0.9, weight "
        "decay 1e-4, batch 128, learning rate 0.1 divided by 10 at 50% and 75% of training, "
        "horizontal flips and 4-pixel crops of the zero-padded image; 182 epochs (their 64k "
        "iterations on 45,000 images)",
        "settings": {
            "optimizer": "sgd",
            "learning_rate": 0.1,
            "momentum": 0.9,
            "weight_decay": 1e-4,
            "weight_decay_mode": "coupled",
            "batch_size": 128,
            "schedule": "step",
            "step_at": [0.5, 0.75],
            "step_factor": 0.1,
            "augmentation": "flip_crop",
            "crop_padding": 4,
            "pad_mode": "zero",
            "epochs": 182,
        },
    },
    "fast": {
        "description": "short schedules in the style of the CIFAR-10 speed records (Page 2018, "
        "DAWNBench; Jordan 2024, airbench): batch 512, Nesterov SGD (momentum 0.9), weight "
        "decay 5e-4, a one-cycle learning rate peaking at 0.4 after 20% of training, label "
        "smoothing 0.2, horizontal flips and 4-pixel crops of the reflect-padded image; 16 "
        "epochs. Their settings, not their networks or their accuracy",
        "settings": {
            "optimizer": "sgd",
            "learning_rate": 0.4,
            "momentum": 0.9,
            "nesterov": True,
            "weight_decay": 5e-4,
            "weight_decay_mode": "coupled",
            "batch_size": 512,
            "schedule": "onecycle",
            "warmup": 0.2,
            "label_smoothing": 0.2,
            "augmentation": "flip_crop",
            "crop_padding": 4,
            "pad_mode": "reflect",
            "epochs": 16,
        },
    },
}
"""Named training recipes: `ProtocolSettings` overrides, each from its source
(docs/protocol.md, "Recipes"). ``--recipe`` applies one over a preset."""


def recipe_settings(name):
    """The settings of recipe ``name`` (`RECIPES`), or a ValueError naming the recipes.

    Example:
        >>> recipe_settings("resnet-cifar")["weight_decay"]
        0.0001
    """
    if name not in RECIPES:
        raise ValueError(
            f"Unknown recipe {name!r}.{did_you_mean(str(name), RECIPES)} Valid recipes: "
            f"{', '.join(RECIPES)}."
        )
    return dict(RECIPES[name]["settings"])


def run_seed(base_seed, run_index) -> int:
    """The seed of run ``run_index``: ``base_seed + run_index``.

    Example:
        >>> run_seed(0, 3)
        3
    """
    return int(base_seed) + int(run_index)


def load_protocol_data(settings):
    """Load and split the data ``settings`` describe: ``settings.data_settings().load()``.

    Example:
    >>> import tempfile, numpy as np
    >>> from keras_attn.data import save_npz
    >>> path = tempfile.mkdtemp() + "/d.npz"
    >>> x = np.zeros((12, 8, 8, 3), "uint8")
    >>> save_npz(path, x, np.arange(12) % 3, x[:4], np.arange(4) % 3)
    >>> len(load_protocol_data(ProtocolSettings(data=path, val_size=2)).y_val)
    2
    """
    return settings.data_settings().load()
