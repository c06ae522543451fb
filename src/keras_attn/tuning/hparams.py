"""A resolved search space as KerasTuner hyperparameters: declaring it, counting its points.

docs/tuning.md describes the hyperparameters and their conditions.
"""

from __future__ import annotations

import contextlib
import math

from keras_attn.tuning.space import STUDY_VALUES, eca_gates, searches_conv_ae

__all__ = ["count_points", "declare", "widths"]

# The conv-AE gate's dimensions besides its depth and growth, in declaration order.
_AE = ("first_filters", "final_kernel", "activation")


def count_points(space, depths):
    """``(model configs, learning rates)`` a resolved space holds, conditionals counted exactly.

    The growth matters only at depth 2 or more, so depth 1 counts once; in a
    gate search the conv-AE's dimensions count only for the conv-AE gate, and
    ``eca`` (ECA before the gate) not for the ECA gate.

    Args:
        space, depths: what `resolve_space` returns.

    Example:
    >>> from keras_attn import get_config
    >>> from keras_attn.tuning.space import resolve_space
    >>> count_points(*resolve_space(None, get_config("cnn")))
    (2160, 4)
    >>> count_points(*resolve_space({"gates": ["eca", "cbam"]}, get_config("cnn")))
    (27, 4)
    """
    positions = len(space["attention_position"] or [None])
    with_eca = eca_gates(space)
    configs = 0
    for gate in space["gates"] or ["conv_ae"]:
        if gate == "conv_ae":
            per = sum(len(space["growth"]) if d >= 2 else 1 for ds in depths.values() for d in ds)
            per *= math.prod(len(space[key]) for key in _AE)
        else:
            per = len(space["sites"])
        eca = len(space["eca"]) if with_eca is None or gate in with_eca else 1
        configs += per * positions * eca
    return configs, len(space["learning_rate"])


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


def _scope(hp, name, values):
    """``hp.conditional_scope(name, values)``, or no condition when ``values`` is None."""
    return contextlib.nullcontext() if values is None else hp.conditional_scope(name, values)


def _study_default(key, values):
    study = STUDY_VALUES[key]
    return study if study in values else values[0]


def _declare_sites(hp, name, space, chosen):
    """The placement (hyperparameter ``name``), where it is active (sets ``chosen["sites"]``)."""
    names = list(space["sites"])
    value = _one(hp, name, names, _study_default("sites", names))
    if value is not None:
        chosen["sites"] = value


def _declare_conv_ae(hp, sites, space, depths, chosen):
    """The conv-AE gate's depth and growth per placement (hyperparameter ``sites``), `_AE`."""
    for placement, placement_depths in depths.items():
        with hp.conditional_scope(sites, [placement]):
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
    for key in _AE:
        chosen[key] = _one(hp, key, space[key], _study_default(key, space[key]))


def declare(hp, space, depths):
    """Declare every hyperparameter of a resolved space on ``hp``; return the chosen values.

    The placement comes first; ``depth_<placement>`` is active only under its
    placement, and ``growth_<placement>`` only at depths of 2 or more. In a
    gate search (``space["gates"]`` set) the gate type comes before it, the
    conv-AE's hyperparameters are active only under ``gate="conv_ae"`` (its
    placement is ``sites_conv_ae``; the other gates' is ``sites``), and
    ``eca`` (ECA before the gate) is not a choice under ``gate="eca"``. Each
    default is the study's value (or the nearest one the space holds).

    Args:
        hp: a ``keras_tuner.HyperParameters``.
        space, depths: what `resolve_space` returns.

    Returns:
        dict: ``gate`` (``"conv_ae"`` unless a gate search chose another),
        ``sites`` (the placement's name), ``depth``, ``growth`` (``None`` at
        depth 1), ``first_filters``, ``final_kernel``, ``activation`` (all
        ``None`` for another gate), ``attention_position`` (``None`` where
        the backbone has no choice), ``eca`` (``None`` under the ECA gate) and
        ``learning_rate``.

    Raises:
        ValueError: ``hp`` holds a value the space does not.

    Example:
    >>> import keras_tuner
    >>> from keras_attn import get_config
    >>> from keras_attn.tuning.space import resolve_space
    >>> hp = keras_tuner.HyperParameters()
    >>> values = declare(hp, *resolve_space(None, get_config("cnn")))
    >>> values["sites"], values["depth"], values["growth"], values["learning_rate"]
    ('all', 3, 2.0, 0.1)
    >>> [p.name for p in hp.space][:3]
    ['sites', 'depth_block1', 'growth_block1']
    >>> hp = keras_tuner.HyperParameters(); hp.values["gate"] = "cbam"
    >>> values = declare(hp, *resolve_space({"gates": ["cbam", "conv_ae"]}, get_config("cnn")))
    >>> values["gate"], values["sites"], values["depth"], values["eca"]
    ('cbam', 'all', None, False)
    """
    gates = space["gates"]
    chosen = dict.fromkeys(("depth", "growth", *_AE), None)
    chosen["gate"] = "conv_ae"
    if gates is not None:
        chosen["gate"] = _one(hp, "gate", gates, _study_default("gate", gates))
    chosen["sites"] = None
    if searches_conv_ae(space):
        # KerasTuner takes a condition's parent only from the scope it is declared in, so
        # in a gate search the conv-AE's placement (the parent of its depths) is its own
        # hyperparameter, "sites_conv_ae", declared under gate="conv_ae".
        sites = "sites" if gates is None else "sites_conv_ae"
        with _scope(hp, "gate", None if gates is None else ["conv_ae"]):
            _declare_sites(hp, sites, space, chosen)
            _declare_conv_ae(hp, sites, space, depths, chosen)
    others = [g for g in gates or [] if g != "conv_ae"]
    if others:
        with _scope(hp, "gate", others if "conv_ae" in gates else None):
            _declare_sites(hp, "sites", space, chosen)
    chosen["attention_position"] = None
    if space["attention_position"] is not None:
        values = space["attention_position"]
        chosen["attention_position"] = _one(
            hp, "attention_position", values, _study_default("attention_position", values)
        )
    with_eca = eca_gates(space)
    chosen["eca"] = None
    if with_eca is None or with_eca:
        with _scope(hp, "gate", with_eca):
            chosen["eca"] = _one(hp, "eca", space["eca"], _study_default("eca", space["eca"]))
    rates = space["learning_rate"]
    chosen["learning_rate"] = _one(
        hp, "learning_rate", rates, _study_default("learning_rate", rates)
    )
    return chosen
