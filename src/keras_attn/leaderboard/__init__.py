"""The gate leaderboard: every gate on several backbones, data sets and recipes, many seeds.

`expand_grid` turns gates x backbones x data sets x recipes into settings, each the
backbone without a gate (the baseline) and with each gate; `run_leaderboard` trains
them through `keras_attn.protocol`, one protocol folder per setting, evenly, resumably,
in shards and under a time budget; `write_leaderboard` writes one report from the
records (`keras_attn.report.gate_table`). ``keras-attn leaderboard`` is the command.

Example:
>>> [s.name for s in expand_grid("se", "cnn,resnet20", "cifar10", runs=4)]
['cnn-cifar10-study', 'resnet20-cifar10-study']
"""

from keras_attn.leaderboard.grid import (
    Setting,
    expand_grid,
    gate_model,
    list_backbones,
)
from keras_attn.leaderboard.report import load_leaderboard, write_leaderboard
from keras_attn.leaderboard.rounds import plan_rounds, run_leaderboard

__all__ = [
    "Setting",
    "expand_grid",
    "gate_model",
    "list_backbones",
    "load_leaderboard",
    "plan_rounds",
    "run_leaderboard",
    "write_leaderboard",
]
