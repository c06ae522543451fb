"""The search space: its defaults, checking and resolving it, declaring it on KerasTuner's ``hp``.

docs/tuning.md describes the space and why the depth is conditioned on the placement.
"""

from __future__ import annotations

import copy
import math
import re

import numpy as np

from keras_attn._checks import did_you_mean
from keras_attn.backbone import ATTENTION_POSITIONS, site_sizes
from keras_attn.layers import max_depth as max_encoder_depth
from keras_attn.layers._checks import check_activation

__all__ = [
    "DEFAULT_SPACE",
    "STUDY_VALUES",
    "count_points",
    "declare",
    "default_placements",
    "resolve_space",
    "widths",
]

#: The search space. Every list is the values one hyperparameter may take.
DEFAULT_SPACE = {
    # Placement name -> the sites (1-based conv layers) that get a gate. None: one
    # placement per conv block ("block1": [1, 2], "block2": [3, 4], ...) plus "all".
    "sites": None,
    "attention_position": ["pre_activation", "post_activation", "post_norm"],
    # ECA before the gate or not.
    "eca": [False, True],
    # Encoder depth (stride-2 stages): from min_depth up to what the smallest chosen
    # site allows, and at most max_depth (None: no further limit).
    "min_depth": 1,
    "max_depth": None,
    "first_filters": [8, 12, 16, 24, 32],
    "growth": [1.0, 1.5, 2.0],
    "final_kernel": [2, 3, 4],
    "activation": ["relu"],
    "learning_rate": [0.01, 0.03, 0.1, 0.3],
}

#: The study's values: each hyperparameter's default when it is among the choices.
STUDY_VALUES = {
    "sites": "all",
    "attention_position": "pre_activation",
    "eca": False,
    "depth": 3,
    "first_filters": 12,
    "growth": 2.0,
    "final_kernel": 3,
    "activation": "relu",
    "learning_rate": 0.1,
}

# The dimensions besides the placement (and its depth and growth), in declaration order.
_PLAIN = ("first_filters", "final_kernel", "activation", "attention_position", "eca")


def default_placements(base_config):
    """One placement per conv block (``"block1"``: sites 1, 2, ...) plus ``"all"``.

    Args:
        base_config: a model config (`keras_attn.get_config` output).

    Example:
    >>> from keras_attn import get_config
    >>> default_placements(get_config("cnn"))
    {'block1': [1, 2], 'block2': [3, 4], 'all': [1, 2, 3, 4]}
    """
    n_blocks = len(base_config["blocks"])
    placements = {f"block{b}": [2 * b - 1, 2 * b] for b in range(1, n_blocks + 1)}
    placements["all"] = list(range(1, 2 * n_blocks + 1))
    return placements


def _check_values(key, values, check, what, convert=None):
    if isinstance(values, (str, bytes, dict)) or not isinstance(values, (list, tuple)):
        raise ValueError(
            f"Search space {key!r} must be a list of {what}, got {values!r} "
            f"(e.g. {DEFAULT_SPACE[key]!r})."
        )
    if not values:
        raise ValueError(
            f"Search space {key!r} is empty: give at least one value, e.g. "
            f"{DEFAULT_SPACE[key]!r}. An empty dimension leaves nothing to search."
        )
    out = []
    for v in values:
        if not check(v):
            raise ValueError(f"Search space {key!r}: {v!r} is not {what} (got {list(values)!r}).")
        out.append(convert(v) if convert else v)
    if len(set(out)) != len(out):
        raise ValueError(f"Search space {key!r} lists a value twice: {list(values)!r}.")
    return sorted(out) if convert else out


def _is_pos_int(v):
    return not isinstance(v, bool) and isinstance(v, (int, np.integer)) and v >= 1


def _is_pos_number(v):
    return (
        not isinstance(v, bool)
        and isinstance(v, (int, float, np.integer, np.floating))
        and math.isfinite(v)
        and v > 0
    )


def _is_activation(v):
    if not isinstance(v, str):
        return False
    try:
        check_activation("activation", v)
    except ValueError:
        return False
    return True


def _resolve_placements(placements, base_config, n_sites):
    if placements is None:
        placements = default_placements(base_config)
    if not isinstance(placements, dict):
        raise ValueError(
            "Search space 'sites' must be None or a dict of placement name -> list of sites, "
            f'e.g. {{"block1": [1, 2], "all": [1, 2, 3, 4]}}; got {placements!r}.'
        )
    if not placements:
        raise ValueError(
            "Search space 'sites' is empty: give at least one placement, e.g. "
            '{"all": [1, 2, 3, 4]}, or None for one per conv block plus "all".'
        )
    resolved = {}
    for name, sites in placements.items():
        if not isinstance(name, str) or not re.fullmatch(r"[A-Za-z0-9_]+", name):
            raise ValueError(
                f"Placement name {name!r} must be letters, digits and underscores "
                "(it becomes part of a hyperparameter name)."
            )
        if (
            isinstance(sites, (str, bytes))
            or not isinstance(sites, (list, tuple))
            or not sites
            or not all(_is_pos_int(x) and x <= n_sites for x in sites)
            or len(set(sites)) != len(sites)
        ):
            raise ValueError(
                f"Placement {name!r} must list distinct sites from 1 to {n_sites} (this "
                f"network has {len(base_config['blocks'])} conv blocks), got {sites!r}."
            )
        resolved[name] = sorted(int(x) for x in sites)
    return resolved


def _check_depth_bounds(s):
    if not _is_pos_int(s["min_depth"]):
        raise ValueError(
            f"Search space 'min_depth' must be an integer >= 1, got {s['min_depth']!r}."
        )
    if s["max_depth"] is not None and (
        not _is_pos_int(s["max_depth"]) or s["max_depth"] < s["min_depth"]
    ):
        raise ValueError(
            f"Search space 'max_depth' must be None or an integer >= min_depth "
            f"({s['min_depth']}), got {s['max_depth']!r}."
        )


def _depths(s, sizes):
    """Placement -> the depths it may take: min_depth up to what its smallest site allows."""
    depths = {}
    for name, sites in s["sites"].items():
        smallest = min(sites, key=lambda site: min(sizes[site - 1][:2]))
        h, w = sizes[smallest - 1][:2]
        allowed = max_encoder_depth(min(h, w))
        top = allowed if s["max_depth"] is None else min(allowed, s["max_depth"])
        if top < s["min_depth"]:
            raise ValueError(
                f"Placement {name!r} (sites {sites}) allows at most {allowed} stride-2 "
                f"stage(s): its smallest site, site {smallest}, is {h}x{w}. The space asks "
                f"for depth >= {s['min_depth']}. Lower 'min_depth' or drop this placement."
            )
        depths[name] = list(range(s["min_depth"], top + 1))
    return depths


def resolve_space(space, base_config):
    """Merge ``space`` over `DEFAULT_SPACE`, check it, and resolve placements and depths.

    Args:
        space: dict of keys to change in `DEFAULT_SPACE`, or ``None``.
        base_config: the network the gates go into (`keras_attn.get_config` output).

    Returns:
        ``(space, depths)``: the complete, checked space (placements resolved to
        sorted site lists; value lists sorted where they are numbers) and, per
        placement, the list of encoder depths its smallest site allows.

    Raises:
        ValueError: an unknown key, an empty or invalid dimension, or a
            placement that cannot hold ``min_depth`` stages.

    Example:
    >>> from keras_attn import get_config
    >>> space, depths = resolve_space({"growth": [2, 1]}, get_config("cnn"))
    >>> space["growth"], depths
    ([1.0, 2.0], {'block1': [1, 2, 3, 4], 'block2': [1, 2, 3], 'all': [1, 2, 3]})
    """
    if space is None:
        space = {}
    if not isinstance(space, dict):
        raise ValueError(f"`space` must be a dict such as DEFAULT_SPACE, got {space!r}.")
    for key in space:
        if key not in DEFAULT_SPACE:
            raise ValueError(
                f"Unknown search-space key {key!r}.{did_you_mean(key, DEFAULT_SPACE)} "
                f"Valid keys: {', '.join(DEFAULT_SPACE)}."
            )
    s = {**copy.deepcopy(DEFAULT_SPACE), **copy.deepcopy(space)}
    sizes = site_sizes(base_config)
    s["sites"] = _resolve_placements(s["sites"], base_config, len(sizes))
    _check_depth_bounds(s)
    positions = f"one of {', '.join(ATTENTION_POSITIONS)}"
    for key, check, what, convert in (
        ("attention_position", lambda v: v in ATTENTION_POSITIONS, positions, None),
        ("eca", lambda v: isinstance(v, bool), "a bool", bool),
        ("first_filters", _is_pos_int, "an int >= 1", int),
        ("growth", _is_pos_number, "a number > 0", float),
        ("final_kernel", _is_pos_int, "an int >= 1", int),
        ("activation", _is_activation, "a Keras activation name", None),
        ("learning_rate", _is_pos_number, "a number > 0", float),
    ):
        s[key] = _check_values(key, s[key], check, what, convert)
    return s, _depths(s, sizes)


def count_points(space, depths):
    """``(model configs, learning rates)`` a resolved space holds, conditionals counted exactly.

    The growth matters only at depth 2 or more, so depth 1 counts once.

    Args:
        space, depths: what `resolve_space` returns.

    Example:
    >>> from keras_attn import get_config
    >>> count_points(*resolve_space(None, get_config("cnn")))
    (2160, 4)
    """
    per_placement = 0
    for ds in depths.values():
        per_placement += sum(len(space["growth"]) if d >= 2 else 1 for d in ds)
    others = 1
    for key in _PLAIN:
        others *= len(space[key])
    return per_placement * others, len(space["learning_rate"])


def widths(first, growth, depth):
    """The encoder's filters: stage ``i`` has ``round(first * growth ** i)`` (halves up, >= 1).

    Example:
    >>> widths(12, 2.0, 3), widths(8, 1.5, 4)
    ([12, 24, 48], [8, 12, 18, 27])
    """
    return [max(1, int(math.floor(first * growth**i + 0.5))) for i in range(depth)]


def _one(hp, name, values, default):
    """Declare ``name`` over ``values`` (Fixed if one value) and check its value."""
    if len(values) == 1:
        value = hp.Fixed(name, values[0])
    elif values == [False, True]:
        value = hp.Boolean(name, default=bool(default))
    else:
        value = hp.Choice(name, values, default=default)
    if value is not None and value not in values:
        raise ValueError(
            f"Hyperparameter {name!r} has value {value!r}, which this search space does "
            f"not hold (valid: {values}). Was it made by a different search space?"
        )
    return value


def _nearest_study_value(key, values):
    study = STUDY_VALUES[key]
    return study if study in values else min(values, key=lambda v: abs(v - study))


def declare(hp, space, depths):
    """Declare every hyperparameter of a resolved space on ``hp``; return the chosen values.

    The placement comes first; ``depth_<placement>`` is active only under its
    placement, and ``growth_<placement>`` only at depths of 2 or more. Each
    default is the study's value (or the nearest one the space holds).

    Args:
        hp: a ``keras_tuner.HyperParameters``.
        space, depths: what `resolve_space` returns.

    Returns:
        dict: ``sites`` (the placement's name), ``depth``, ``growth`` (``None``
        at depth 1), ``first_filters``, ``final_kernel``, ``activation``,
        ``attention_position``, ``eca`` and ``learning_rate``.

    Raises:
        ValueError: ``hp`` holds a value the space does not.

    Example:
    >>> import keras_tuner
    >>> from keras_attn import get_config
    >>> hp = keras_tuner.HyperParameters()
    >>> values = declare(hp, *resolve_space(None, get_config("cnn")))
    >>> values["sites"], values["depth"], values["growth"], values["learning_rate"]
    ('all', 3, 2.0, 0.1)
    >>> [p.name for p in hp.space][:3]
    ['sites', 'depth_block1', 'growth_block1']
    """
    names = list(space["sites"])
    study = STUDY_VALUES["sites"]
    chosen = {"sites": _one(hp, "sites", names, study if study in names else names[0])}
    for placement, placement_depths in depths.items():
        with hp.conditional_scope("sites", [placement]):
            depth = _one(
                hp,
                f"depth_{placement}",
                placement_depths,
                _nearest_study_value("depth", placement_depths),
            )
            deep = [d for d in placement_depths if d >= 2]
            growth = None
            if deep:
                with hp.conditional_scope(f"depth_{placement}", deep):
                    growth = _one(
                        hp,
                        f"growth_{placement}",
                        space["growth"],
                        _nearest_study_value("growth", space["growth"]),
                    )
        if placement == chosen["sites"]:
            chosen["depth"], chosen["growth"] = depth, growth
    for key in (*_PLAIN, "learning_rate"):
        values, study = space[key], STUDY_VALUES[key]
        chosen[key] = _one(hp, key, values, study if study in values else values[0])
    return chosen
