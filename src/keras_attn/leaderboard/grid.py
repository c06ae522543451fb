"""The leaderboard's grid: settings (backbone, data set, recipe), each with its models.

A setting trains its backbone without a gate (the baseline) and with each gate at every
site: the study's sites of the CNN (every convolution), every residual block of a ResNet.
"""

from __future__ import annotations

import dataclasses
import re

from keras_attn import zoo
from keras_attn._checks import did_you_mean
from keras_attn.layers import list_gates
from keras_attn.protocol import ProtocolSettings, resolve_models
from keras_attn.protocol.settings import RECIPES, recipe_settings
from keras_attn.zoo import list_backbones

__all__ = [
    "DATASETS",
    "Setting",
    "expand_grid",
    "gate_model",
    "list_backbones",
]

#: Data set name -> where it is read from unless ``data_dirs`` gives a path.
DATASETS = {"cifar10": "tfds:cifar10", "cifar100": "tfds:cifar100"}
# Names that become folder names: no "-" (it separates the parts of a setting's name).
_NAME = re.compile(r"[A-Za-z0-9_.]+")


def _without_gates(config):
    gates = set(list_gates())
    return {k: v for k, v in config.items() if k not in gates and k not in ("name", "attention")}


def gate_model(backbone, gate):
    """The model of ``backbone`` with ``gate`` at every site: a registered name or a config.

    The registered variant ``<backbone>_<gate>`` when it is that model (it may
    fix the gate's options as the study did, e.g. ``cnn_conv_ae``), else the
    backbone's config with ``"attention": [gate]`` under that name.

    Example:
    >>> gate_model("cnn", "eca"), gate_model("resnet20", "se")
    ('cnn_eca', 'resnet20_se')
    >>> config = gate_model("resnet20", "simam")
    >>> config["name"], config["attention"], config["depth"]
    ('resnet20_simam', ['simam'], 20)
    """
    name = f"{backbone}_{gate}"
    base = zoo.get_config(backbone)
    if name in zoo.list_models():
        registered = zoo.get_config(name)
        if registered["attention"] == [gate] and _without_gates(registered) == _without_gates(base):
            return name
    return {**base, "name": name, "attention": [gate]}


@dataclasses.dataclass
class Setting:
    """One setting of the grid: a backbone, a data set and a recipe, and what it trains.

    Args:
        backbone: a name from `list_backbones`.
        data: the data set's name (its folder name part).
        recipe: a recipe name (`keras_attn.protocol.settings.RECIPES`).
        settings: the `keras_attn.protocol.ProtocolSettings` of its runs.
        gates: the gates trained beside the baseline, in order.

    Example:
    >>> [s] = expand_grid("se", "cnn", "cifar10", runs=2)
    >>> s.name, s.models()[0], s.settings.data
    ('cnn-cifar10-study', 'cnn', 'tfds:cifar10')
    """

    backbone: str
    data: str
    recipe: str
    settings: ProtocolSettings
    gates: tuple

    @property
    def name(self):
        """``<backbone>-<data>-<recipe>``: the setting's folder under the leaderboard's."""
        return f"{self.backbone}-{self.data}-{self.recipe}"

    def models(self):
        """The baseline (the backbone's name), then each gate's model (`gate_model`)."""
        return [self.backbone] + [gate_model(self.backbone, g) for g in self.gates]


def _names(what, value):
    if isinstance(value, str):
        value = value.split(",")
    names = [str(v).strip() for v in value or [] if str(v).strip()]
    if not names:
        raise ValueError(f"No {what} given.")
    if len(set(names)) != len(names):
        raise ValueError(f"{what.capitalize()} listed twice: {names}.")
    return names


def _check(what, names, valid, extra=""):
    bad = [n for n in names if n not in valid]
    if bad:
        hint = did_you_mean(bad[0], valid) if len(bad) == 1 else ""
        raise ValueError(
            f"Unknown {what} {', '.join(map(repr, bad))}.{hint} Valid {what}s: "
            f"{', '.join(valid)}{extra}."
        )


def _settings(recipe, runs, source, overrides):
    fields = {f.name for f in dataclasses.fields(ProtocolSettings)} - {"runs", "data"}
    bad = sorted(set(overrides) - fields)
    if bad:
        raise ValueError(
            f"Unknown protocol setting(s) {bad}; valid: {', '.join(sorted(fields))} (the runs "
            "and the data come from the grid)."
        )
    return ProtocolSettings(
        **{**recipe_settings(recipe), **overrides, "runs": runs, "data": source}
    )


def expand_grid(
    gates="all",
    backbones=("cnn", "resnet20"),
    data=("cifar10",),
    recipes=("study",),
    runs=16,
    *,
    data_dirs=None,
    settings=None,
):
    """The leaderboard's settings: every backbone x data set x recipe, with its models.

    Every entry is checked before anything trains: an unknown gate, backbone,
    data set or recipe, or a gate that does not fit a backbone, raises a
    ``ValueError`` of one line naming what is valid.

    Args:
        gates: gate names (`keras_attn.layers.list_gates`), a comma-separated
            string, or ``"all"``.
        backbones: names from `list_backbones` (list or comma-separated).
        data: data set names: those of `DATASETS` or of ``data_dirs``.
        recipes: recipe names (`keras_attn.protocol.settings.RECIPES`).
        runs: runs (seeds) per model and setting.
        data_dirs: ``{data set name: path}`` (an image folder, its ``.tar.gz``,
            or an ``.npz``) instead of `DATASETS`' tensorflow-datasets source.
        settings: `ProtocolSettings` overrides for every setting, applied after
            the recipe's (e.g. ``{"epochs": 2, "train_limit": 5000}``).

    Returns:
        A list of `Setting`, backbones outermost, then data sets, then recipes.

    Example:
    >>> grid = expand_grid("eca,se", "cnn,resnet20", "cifar10,cifar100", runs=4)
    >>> [s.name for s in grid][:2], len(grid), len(grid[0].models())
    (['cnn-cifar10-study', 'cnn-cifar100-study'], 4, 3)
    """
    all_gates = list(list_gates())
    gate_names = all_gates if gates == "all" else _names("gate", gates)
    _check("gate", gate_names, all_gates, " (or 'all')")
    backbone_names = _names("backbone", backbones)
    _check("backbone", backbone_names, list_backbones())
    data_dirs = dict(data_dirs or {})
    data_names = _names("data set", data)
    known = list(dict.fromkeys([*DATASETS, *data_dirs]))
    _check("data set", data_names, known, ", or a NAME given a path with --data-dir NAME=PATH")
    for name in data_dirs:
        if not _NAME.fullmatch(name):
            raise ValueError(f"A data set name is letters, digits, '_' and '.'; got {name!r}.")
    unused = [n for n in data_dirs if n not in data_names]
    if unused:
        raise ValueError(f"Data set(s) {unused} have a path but are not in the grid's data sets.")
    recipe_names = _names("recipe", recipes)
    _check("recipe", recipe_names, list(RECIPES))
    overrides = dict(settings or {})
    grid = []
    for backbone in backbone_names:
        for name in data_names:
            for recipe in recipe_names:
                source = data_dirs.get(name, DATASETS.get(name))
                s = _settings(recipe, runs, source, overrides)
                grid.append(Setting(backbone, name, recipe, s, tuple(gate_names)))
    checked = set()
    for setting in grid:
        key = (setting.backbone, repr(setting.settings.model_overrides))
        if key in checked:
            continue
        checked.add(key)
        for gate, model in zip((None, *setting.gates), setting.models()):
            try:
                [spec] = resolve_models([model])
                spec.config(setting.settings.model_overrides)
            except ValueError as e:
                what = f"gate {gate!r} on" if gate else "backbone"
                raise ValueError(f"The {what} {setting.backbone!r} does not build: {e}") from None
    return grid
