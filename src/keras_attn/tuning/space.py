"""The search space: its defaults, checking it and resolving it for a backbone.

docs/tuning.md describes the space, why the depth is conditioned on the placement, and the
gate search (``"gates"``), under which the conv-AE's hyperparameters are conditioned on the
gate.
"""

from __future__ import annotations

import copy
import math
import re

import numpy as np

from keras_attn._checks import did_you_mean
from keras_attn.backbone import ATTENTION_POSITIONS
from keras_attn.layers import max_depth as max_encoder_depth
from keras_attn.layers._checks import check_activation
from keras_attn.tuning import backbones

__all__ = [
    "DEFAULT_SPACE",
    "STUDY_VALUES",
    "eca_gates",
    "resolve_space",
    "searches_conv_ae",
]

#: The search space. Every list is the values one hyperparameter may take.
DEFAULT_SPACE = {
    # The gate types to choose from (registered names, or "all"). None: the conv-AE gate
    # only, with no "gate" hyperparameter (the search as it always was).
    "gates": None,
    # Placement name -> the sites (1-based conv layers; a ResNet's residual blocks) that
    # get a gate. None: one placement per block ("block1": [1, 2], ...) plus "all".
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
    "gate": "conv_ae",
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
        placements = backbones.default_placements(base_config)
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
                f"Placement {name!r} must list distinct sites from 1 to {n_sites} "
                f"({backbones.sites_text(base_config)}), got {sites!r}."
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


def _resolve_gates(gates):
    """None, or the chosen gate names in registry order ("all": every registered one)."""
    if gates is None:
        return None
    registered = backbones.gate_names()
    if gates == "all":
        return registered
    example = '["eca", "cbam", "conv_ae"]'
    if isinstance(gates, (str, bytes)) or not isinstance(gates, (list, tuple)) or not gates:
        raise ValueError(
            f"Search space 'gates' must be None, \"all\" or a non-empty list of gate names, "
            f"e.g. {example}; got {gates!r}."
        )
    for gate in gates:
        if gate not in registered:
            raise ValueError(
                f"Search space 'gates': unknown gate {gate!r}.{did_you_mean(gate, registered)} "
                f'Valid gates: {", ".join(registered)} (or "all").'
            )
    if len(set(gates)) != len(gates):
        raise ValueError(f"Search space 'gates' lists a gate twice: {list(gates)!r}.")
    return [g for g in registered if g in gates]


def searches_conv_ae(space):
    """Whether a resolved space holds the conv-AE gate (its depth, widths, kernel).

    Example:
    >>> from keras_attn import get_config
    >>> searches_conv_ae(resolve_space({"gates": ["eca", "cbam"]}, get_config("cnn"))[0])
    False
    """
    return space["gates"] is None or "conv_ae" in space["gates"]


def eca_gates(space):
    """The gates under which ``eca`` (ECA before the gate) is a choice; ``None``: always.

    Example:
    >>> from keras_attn import get_config
    >>> eca_gates(resolve_space({"gates": ["eca", "cbam"]}, get_config("cnn"))[0])
    ['cbam']
    """
    if space["gates"] is None:
        return None
    return [g for g in space["gates"] if g != "eca"]


def _depths(s, sizes):
    """Placement -> the depths it may take: min_depth up to what its smallest site allows."""
    if not searches_conv_ae(s):
        return {}
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
        ValueError: an unknown key, an empty or invalid dimension, an
            unknown gate, or a placement that cannot hold ``min_depth`` stages.

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
    s["gates"] = _resolve_gates(s["gates"])
    sizes = backbones.site_sizes(base_config)
    s["sites"] = _resolve_placements(s["sites"], base_config, len(sizes))
    _check_depth_bounds(s)
    if not backbones.has_position(base_config):
        if "attention_position" in space:
            raise ValueError(
                f"Search space 'attention_position': the backbone {base_config['name']!r} has "
                "one place for a gate in each block, so there is no position to choose. "
                "Leave 'attention_position' out of the space."
            )
        s["attention_position"] = None
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
        if s[key] is not None or key != "attention_position":
            s[key] = _check_values(key, s[key], check, what, convert)
    return s, _depths(s, sizes)
