"""The study's multi-seed protocol: train every model several times, keep one record per run.

``run_protocol(models, ProtocolSettings(...), out_dir)`` trains each (model, run), or one
shard of them, resumes whatever was interrupted, and writes a JSON record per run
(`keras_attn.protocol.records` describes the folder). `launch` runs the same as a SLURM
job array. The pieces: `settings` (what a run is trained with, presets), `models` (which
models), `plan` (tasks, shards, groups), `loop` (the one training loop), `training` (the
optimizer and the training path), `fit_trainer` and `jax_trainer` (the trainers),
`finish` (the record), `records` (the output folder), `budget` (a time budget), `run`,
`launch`. Names load on first use: the settings load no Keras, so a command checks them
before a backend starts.

Example:
>>> from keras_attn.protocol import ProtocolSettings, run_seed
>>> ProtocolSettings().runs, ProtocolSettings().epochs, run_seed(0, 3)
(16, 10, 3)
"""

import importlib

#: Each public name and the module it lives in.
_WHERE = {
    "ModelSpec": "models",
    "ProtocolSettings": "settings",
    "best_run": "records",
    "launch": "launcher",
    "load_protocol_data": "settings",
    "parse_duration": "budget",
    "parse_shard": "plan",
    "plan_tasks": "plan",
    "resolve_models": "models",
    "resolve_training": "training",
    "run_group": "loop",
    "run_one": "loop",
    "run_protocol": "run",
    "run_seed": "settings",
    "shard_from_environment": "plan",
}

__all__ = sorted(_WHERE)


def __getattr__(name):
    if name not in _WHERE:  # a submodule (``protocol.plan``), or nothing
        try:
            return importlib.import_module(f"{__name__}.{name}")
        except ModuleNotFoundError:
            raise AttributeError(f"module {__name__!r} has no attribute {name!r}") from None
    value = getattr(importlib.import_module(f"{__name__}.{_WHERE[name]}"), name)
    globals()[name] = value
    return value


def __dir__():
    return sorted(set(globals()) | set(_WHERE))
