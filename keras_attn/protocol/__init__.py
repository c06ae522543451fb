"""The study's multi-seed protocol: train every model several times, keep one record per run.

``run_protocol(models, ProtocolSettings(...), out_dir)`` trains each (model, run), or one
shard of them, resumes whatever was interrupted, and writes a JSON record per run
(`keras_attn.protocol.records` describes the folder). `launch` runs the same as a SLURM
job array. The pieces: `settings` (what a run is trained with, presets), `models` (which
models), `plan` (tasks, shards, groups), `loop` (the one training loop), `finish` (the
record), `records` (the output folder), `budget` (a time budget), `run`, `launch`.
The presets are `keras_attn.protocol.settings.PRESETS`; the runtime set-up (threads,
determinism) and the machine's description are `keras_attn.runtime`.

Example:
>>> ProtocolSettings().runs, ProtocolSettings().epochs, run_seed(0, 3)
(16, 10, 3)
"""

from keras_attn.protocol.budget import parse_duration
from keras_attn.protocol.launch import launch
from keras_attn.protocol.loop import run_group, run_one
from keras_attn.protocol.models import ModelSpec, resolve_models
from keras_attn.protocol.plan import parse_shard, plan_tasks, shard_from_environment
from keras_attn.protocol.records import best_run
from keras_attn.protocol.run import run_protocol
from keras_attn.protocol.settings import ProtocolSettings, resolve_training, run_seed


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


__all__ = [
    "ModelSpec",
    "ProtocolSettings",
    "best_run",
    "launch",
    "load_protocol_data",
    "parse_duration",
    "parse_shard",
    "plan_tasks",
    "resolve_models",
    "resolve_training",
    "run_group",
    "run_one",
    "run_protocol",
    "run_seed",
    "shard_from_environment",
]
