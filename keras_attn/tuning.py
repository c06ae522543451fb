"""KerasTuner search over the conv-autoencoder gate: depth, widths, placement, learning rate.

The study's own suggestion for further work was to vary the autoencoder's
depth and layer sizes and to try other placements. This module turns that into
a `keras_tuner.HyperModel` whose search space is the builder's config
(`keras_attn.backbone.DEFAULT_CONFIG`): every trial is a complete config that
`keras_attn.build` accepts, plus a learning rate.

The search space (`DEFAULT_SPACE`, data; pass ``space=`` to change any part):

========================  ================================================  =====================
hyperparameter            config key it sets                                study's value
========================  ================================================  =====================
``sites``                 ``sites``: a named placement ("block1" = sites    ``"all"``
                          1, 2; "block2" = 3, 4; "all")
``depth_<placement>``     ``len(conv_ae.filters)``: stride-2 stages         3
``growth_<placement>``    width ratio between stages (depth >= 2 only)      2.0
``first_filters``         ``conv_ae.filters[0]``                            12
``final_kernel``          ``conv_ae.final_kernel``                          3 (2 at site 4)
``activation``            ``conv_ae.activation``                            ``"relu"``
``attention_position``    ``attention_position`` (before ReLU, after ReLU,  ``"pre_activation"``
                          after BatchNorm)
``eca``                   ``attention``: ``["eca", "conv_ae"]`` or          ``False``
                          ``["conv_ae"]``
``learning_rate``         the SGD learning rate (not part of the config)    0.1
========================  ================================================  =====================

Widths: stage ``i`` has ``round(first_filters * growth ** i)`` filters (at
least 1; halves round up), so the study's 12, 24, 48 is ``first_filters=12,
growth=2.0``. Every hyperparameter's default is the study's value, so
``build(keras_tuner.HyperParameters())`` is the study's ``cnn_conv_ae`` (with
one final kernel, 3, at every site).

**How every sample builds.** The deepest encoder a site allows depends on its
feature-map size (`keras_attn.layers.max_depth`: 5 stages at 32x32, 4 at 30x30,
3 at 15x15 and 13x13 on CIFAR), and KerasTuner cannot give a hyperparameter a
range that depends on another one's value after it is declared. So the
placement is chosen first, and the depth is a *conditional* hyperparameter of
the placement: one ``depth_<placement>`` per placement, active only when that
placement is chosen, whose range is ``min_depth`` up to what the smallest site
of that placement allows (and at most ``max_depth``), computed with
`keras_attn.backbone.site_sizes` when the HyperModel is made. On CIFAR-10 that
is 1-4 for ``block1`` (site 2 is 30x30), 1-3 for ``block2`` and ``all``. The
width ratio matters only with two or more stages, so ``growth_<placement>`` is
conditional on ``depth_<placement> >= 2``. No sample is ever clamped or
rejected, no two points of the space give the same model and learning rate,
and a hyperparameter that does not matter for a trial is inactive (it never
varies). A placement that cannot hold even ``min_depth`` stages is refused
when the HyperModel is made.

**The project folder is the state.** Rerunning a search with the same
``directory`` and ``project_name`` continues it: finished trials are never run
again, a raised ``max_trials`` runs only the new ones, and a trial interrupted
by a crash runs again from scratch. A fingerprint of everything that makes
trials comparable (search space, base config, tuner and its settings, epochs,
batch size, seed, data, and the mixed-precision policy when one is set) is
kept in ``<project>/keras_attn_search.json``; a folder made by a different
search is refused with the differences listed (choose another project, or
``overwrite=True`` to start again).

**Training speed.** Trials compile through
`keras_attn.training.compile_for_training`, with `keras_attn.training.fast_path`'s
``jit_compile`` for this backend and device unless ``jit_compile`` says
otherwise (XLA changes results only within float tolerance, so it is not part
of the fingerprint: a search may resume with or without it). Mixed precision
(``mixed_precision="mixed_bfloat16"`` or ``"mixed_float16"``) is opt-in; it
changes results, so it is part of the fingerprint.

**Distributed search** uses KerasTuner's own chief/worker mode: run the same
search in several processes that share the ``directory``, with
``KERASTUNER_ORACLE_IP`` / ``KERASTUNER_ORACLE_PORT`` set in all of them,
``KERASTUNER_TUNER_ID=chief`` in one (it serves the oracle and trains nothing)
and a unique ``KERASTUNER_TUNER_ID`` (``tuner0``, ``tuner1``, ...) in each
worker. `search` in the chief returns when every worker is done; then write
the results there (``scripts/tune.py`` does).

Example:
>>> import numpy as np
>>> hm = ConvAutoencoderHyperModel(space={"learning_rate": [0.1]})  # doctest: +SKIP
>>> x = np.zeros((64, 32, 32, 3), "uint8"); y = np.arange(64) % 10  # doctest: +SKIP
>>> tuner = search(hm, x, y, x[:32], y[:32], tuner="random", max_trials=2,
...                epochs=1, directory="/tmp/tuning")  # doctest: +SKIP
>>> report = write_results(tuner.project_dir, hm)  # doctest: +SKIP
"""

from __future__ import annotations

import copy
import csv
import glob
import hashlib
import io
import json
import math
import os
import re
import shlex
import shutil
import time
from pathlib import Path

import keras
import keras_tuner
import numpy as np

from keras_attn import _files as files
from keras_attn._checks import check_int, did_you_mean
from keras_attn.backbone import ATTENTION_POSITIONS, count_trainable_params, site_sizes
from keras_attn.data import ArrayBatches, fingerprint_arrays
from keras_attn.layers import max_depth as max_encoder_depth
from keras_attn.layers._checks import check_activation
from keras_attn.training import (
    check_jit_compile,
    check_mixed_precision,
    compile_for_training,
    dtype_policy,
    fast_path,
)
from keras_attn.zoo import build as build_model
from keras_attn.zoo import get_config

__all__ = [
    "DEFAULT_SPACE",
    "OBJECTIVE",
    "PRESETS",
    "RECORD_FILE",
    "SEARCH_DEFAULTS",
    "TUNERS",
    "ConvAutoencoderHyperModel",
    "check_search_settings",
    "check_trials",
    "distributed_role",
    "format_table",
    "make_tuner",
    "protocol_command",
    "read_trials",
    "search",
    "top_trials",
    "write_results",
]

#: Version of the search-space logic; part of the project fingerprint.
SPACE_FORMAT = 1
#: The tuners ``make_tuner`` knows, by the name the command line uses.
TUNERS = ("random", "bayesian", "hyperband")
#: What the search maximises.
OBJECTIVE = "val_accuracy"
#: The fingerprint file in each project folder.
RECORD_FILE = "keras_attn_search.json"
#: The settings `make_tuner`, `search` and `check_search_settings` take as keyword
#: arguments, with their defaults (one list for all three).
SEARCH_DEFAULTS = {
    "tuner": "hyperband",
    "directory": "tuning",
    "project_name": "ae_search",
    "max_trials": None,
    "epochs": 10,
    "batch_size": 128,
    "factor": 3,
    "seed": 1,
    "overwrite": False,
    "data_fingerprint": None,
    # None: the hypermodel's (whose own None is fast_path()'s choice / float32).
    "jit_compile": None,
    "mixed_precision": None,
}

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

# The study's values: each hyperparameter's default when it is among the choices.
_STUDY = {
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

#: Named search settings for ``scripts/tune.py``; flags given on the command line win.
PRESETS = {
    "default": {
        "description": "Hyperband on CIFAR-10 (45,000 train / 5,000 val), at most 10 epochs "
        "a trial (the study's budget), the full search space",
        "settings": {"tuner": "hyperband", "epochs": 10, "batch_size": 128},
        "project": "ae_{tuner}",
    },
    "smoke": {
        "description": "a few minutes on a laptop CPU: random search, 3 trials x 1 epoch on "
        "2,000 train / 500 val images (the offline JPEG copy when present)",
        "settings": {
            "tuner": "random",
            "max_trials": 3,
            "epochs": 1,
            "batch_size": 64,
            "train_limit": 2000,
            "val_limit": 500,
        },
        "project": "smoke_{tuner}",
    },
}


# --------------------------------------------------------------------------- the space


def _default_placements(base_config):
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


def _resolve_space(space, base_config):
    """Merge ``space`` over `DEFAULT_SPACE`, check it and resolve placements and depths."""
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
    n_sites = len(sizes)
    placements = s["sites"] if s["sites"] is not None else _default_placements(base_config)
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
    s["sites"] = resolved

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

    def _position(v):
        return v in ATTENTION_POSITIONS

    def _activation(v):
        if not isinstance(v, str):
            return False
        try:
            check_activation("activation", v)
        except ValueError:
            return False
        return True

    s["attention_position"] = _check_values(
        "attention_position",
        s["attention_position"],
        _position,
        f"one of {', '.join(ATTENTION_POSITIONS)}",
    )
    s["eca"] = _check_values("eca", s["eca"], lambda v: isinstance(v, bool), "a bool", bool)
    s["first_filters"] = _check_values(
        "first_filters", s["first_filters"], _is_pos_int, "an int >= 1", int
    )
    s["growth"] = _check_values("growth", s["growth"], _is_pos_number, "a number > 0", float)
    s["final_kernel"] = _check_values(
        "final_kernel", s["final_kernel"], _is_pos_int, "an int >= 1", int
    )
    s["activation"] = _check_values(
        "activation", s["activation"], _activation, "a Keras activation name"
    )
    s["learning_rate"] = _check_values(
        "learning_rate", s["learning_rate"], _is_pos_number, "a number > 0", float
    )

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
    return s, depths


def _count_points(space, depths):
    """(model configs, learning rates) the space holds, counting conditionals exactly."""
    per_placement = 0
    for ds in depths.values():
        per_placement += sum(len(space["growth"]) if d >= 2 else 1 for d in ds)
    others = 1
    for key in ("attention_position", "eca", "first_filters", "final_kernel", "activation"):
        others *= len(space[key])
    return per_placement * others, len(space["learning_rate"])


def _widths(first, growth, depth):
    return [max(1, int(math.floor(first * growth**i + 0.5))) for i in range(depth)]


class ConvAutoencoderHyperModel(keras_tuner.HyperModel):
    """A KerasTuner HyperModel over the conv-autoencoder gate's config and the learning rate.

    The constructor takes the fixed facts (the base network, input shape,
    classes, the space's bounds); every searched choice is a named ``hp.*`` with
    the study's value as default, declared in `build`. See the module docstring
    for the space and for how the depth is conditioned on the placement so that
    every sample builds.

    Args:
        base: str or dict, default ``"cnn"``. The network the gates go into: a
            registered name or a config. Its attention settings are replaced.
        input_shape: ``(height, width, channels)``, default the base's
            (32, 32, 3 for ``"cnn"``).
        num_classes: int, default the base's (10 for ``"cnn"``).
        space: dict, default ``None`` (`DEFAULT_SPACE`). Keys to change in
            `DEFAULT_SPACE`, e.g. ``{"first_filters": [8, 16], "eca": [True]}``.
            A one-value list fixes that choice.
        seed: int >= 1, default 1. Every trial's weights start from this seed
            (common random numbers: trials differ only by their config).
        name: str, default ``"conv_ae_search"``; the HyperModel's name.
        jit_compile: bool or ``None`` (default): jit-compile the training
            steps (XLA); ``None`` takes `keras_attn.training.fast_path`'s choice
            for this backend and device when a model is built.
        mixed_precision: ``None`` (default, float32), ``"mixed_bfloat16"`` or
            ``"mixed_float16"``: the dtype policy models are built under
            (`keras_attn.training.dtype_policy`).

    Raises:
        ValueError: an unknown space key, an empty or invalid dimension, a
            placement whose sites cannot hold ``min_depth`` stages, a space
            with a single point (nothing to search), or a bad ``jit_compile``
            or ``mixed_precision``.

    Example:
    >>> import keras_tuner
    >>> hm = ConvAutoencoderHyperModel()
    >>> hm.depths
    {'block1': [1, 2, 3, 4], 'block2': [1, 2, 3], 'all': [1, 2, 3]}
    >>> hm.model_config(keras_tuner.HyperParameters())["conv_ae"]["filters"]
    [12, 24, 48]
    >>> hm.model_config({"sites": "block1", "depth_block1": 4, "growth_block1": 1.5})["sites"]
    [1, 2]
    """

    def __init__(
        self,
        base="cnn",
        *,
        input_shape=None,
        num_classes=None,
        space=None,
        seed=1,
        name="conv_ae_search",
        jit_compile=None,
        mixed_precision=None,
    ):
        super().__init__(name=name, tunable=True)
        self.jit_compile = check_jit_compile(jit_compile)
        self.mixed_precision = check_mixed_precision(mixed_precision)
        overrides = {}
        if input_shape is not None:
            overrides["input_shape"] = [int(d) for d in input_shape]
        if num_classes is not None:
            overrides["num_classes"] = num_classes
        self.base_config = get_config(base, **overrides)
        if not _is_pos_int(seed):
            raise ValueError(
                f"`seed` must be an integer >= 1, got {seed!r} (KerasTuner treats 0 as "
                "'pick a random seed')."
            )
        self.seed = int(seed)
        self.space, self.depths = _resolve_space(space, self.base_config)
        configs, rates = _count_points(self.space, self.depths)
        if configs * rates == 1:
            raise ValueError(
                "The search space holds a single point (every dimension has one value and "
                "each placement one depth): there is nothing to search. Widen a dimension, or "
                "train that config directly with scripts/protocol.py."
            )

    # ----------------------------------------------------------------- declaring

    @staticmethod
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

    @staticmethod
    def _default(key, values):
        study = _STUDY[key]
        return study if study in values else min(values, key=lambda v: abs(v - study))

    def _declare(self, hp):
        """Declare every hyperparameter on ``hp`` and return the chosen values."""
        s = self.space

        def pick(key):
            values = s[key]
            default = _STUDY[key] if _STUDY[key] in values else values[0]
            return self._one(hp, key, values, default)

        names = list(s["sites"])
        chosen = {
            "sites": self._one(
                hp, "sites", names, _STUDY["sites"] if _STUDY["sites"] in names else names[0]
            )
        }
        for placement, depths in self.depths.items():
            with hp.conditional_scope("sites", [placement]):
                depth = self._one(hp, f"depth_{placement}", depths, self._default("depth", depths))
                deep = [d for d in depths if d >= 2]
                if deep:
                    with hp.conditional_scope(f"depth_{placement}", deep):
                        growth = self._one(
                            hp,
                            f"growth_{placement}",
                            s["growth"],
                            self._default("growth", s["growth"]),
                        )
                else:
                    growth = None
            if placement == chosen["sites"]:
                chosen["depth"], chosen["growth"] = depth, growth
        for key in ("first_filters", "final_kernel", "activation", "attention_position", "eca"):
            chosen[key] = pick(key)
        chosen["learning_rate"] = pick("learning_rate")
        return chosen

    def _as_hp(self, hp):
        if isinstance(hp, keras_tuner.HyperParameters):
            return hp
        if isinstance(hp, dict):
            values = hp
            hp = keras_tuner.HyperParameters()
            hp.values = dict(values)
            return hp
        raise ValueError(
            f"Expected keras_tuner.HyperParameters or a dict of values, got {type(hp).__name__}."
        )

    def hyperparameters(self):
        """A `keras_tuner.HyperParameters` holding every hyperparameter of the space.

        All conditional branches are declared (values are the defaults), so
        ``.space`` lists the whole search space, e.g. to enumerate or sample it.

        Example:
        >>> [p.name for p in ConvAutoencoderHyperModel().hyperparameters().space][:3]
        ['sites', 'depth_block1', 'growth_block1']
        """
        hp = keras_tuner.HyperParameters()
        self._declare(hp)
        for placement, depths in self.depths.items():
            for depth in depths:
                probe = keras_tuner.HyperParameters()
                probe.values = {"sites": placement, f"depth_{placement}": depth}
                self._declare(probe)
                hp.merge(probe.space, overwrite=False)
        return hp

    def values(self, hp):
        """The searched choices of ``hp`` as a plain dict (depth and growth resolved).

        Args:
            hp: `keras_tuner.HyperParameters` or a dict of hyperparameter values
                (missing ones take their defaults).

        Returns:
            dict with ``sites`` (placement name), ``depth``, ``growth`` (``None``
            at depth 1), ``first_filters``, ``final_kernel``, ``activation``,
            ``attention_position``, ``eca`` and ``learning_rate``.

        Example:
        >>> ConvAutoencoderHyperModel().values({"eca": True})["eca"]
        True
        """
        return self._declare(self._as_hp(hp))

    def model_config(self, hp, name=None):
        """The complete model config of ``hp``: what `keras_attn.build` takes unchanged.

        Args:
            hp: `keras_tuner.HyperParameters` or a dict of hyperparameter values.
            name: str, default the HyperModel's name; the config's ``name``.

        Returns:
            A validated, JSON-able config dict (`keras_attn.get_config` output).

        Example:
        >>> cfg = ConvAutoencoderHyperModel().model_config({"eca": True})
        >>> cfg["attention"], cfg["conv_ae"]["filters"]
        (['eca', 'conv_ae'], [12, 24, 48])
        """
        v = self.values(hp)
        return get_config(
            self.base_config,
            name=name or self.name,
            attention=(["eca"] if v["eca"] else []) + ["conv_ae"],
            sites=self.space["sites"][v["sites"]],
            attention_position=v["attention_position"],
            conv_ae={
                "filters": _widths(v["first_filters"], v["growth"] or 1.0, v["depth"]),
                "final_kernel": v["final_kernel"],
                "activation": v["activation"],
            },
        )

    def learning_rate(self, hp):
        """The SGD learning rate of ``hp``.

        Example:
        >>> ConvAutoencoderHyperModel().learning_rate({})
        0.1
        """
        return float(self.values(hp)["learning_rate"])

    def size(self):
        """``(model configs, learning rates)`` the space holds (conditionals counted exactly).

        Example:
        >>> ConvAutoencoderHyperModel().size()
        (2160, 4)
        """
        return _count_points(self.space, self.depths)

    def describe(self):
        """A one-paragraph, human-readable summary of the space.

        Example:
        >>> print(ConvAutoencoderHyperModel().describe())  # doctest: +ELLIPSIS
        search space: 2,160 model configs x 4 learning rates ...
        """
        configs, rates = self.size()
        placements = ", ".join(
            f"{p} (sites {','.join(map(str, self.space['sites'][p]))}; depth {d[0]}-{d[-1]})"
            for p, d in self.depths.items()
        )
        s = self.space
        return (
            f"search space: {configs:,} model configs x {rates} learning rates on "
            f"{self.base_config['name']} (blocks {self.base_config['blocks']}, input "
            f"{tuple(self.base_config['input_shape'])}); "
            f"placements: {placements}; first filters {s['first_filters']}, growth "
            f"{s['growth']}, final kernel {s['final_kernel']}, activation {s['activation']}, "
            f"position {s['attention_position']}, ECA {s['eca']}, learning rate "
            f"{s['learning_rate']}"
        )

    # ----------------------------------------------------------------- KerasTuner

    def build(self, hp):
        """Build and compile the model of ``hp`` (SGD, sparse categorical cross-entropy).

        Deterministic: the same ``hp`` always gives the same architecture, and
        the weights start from ``seed`` (KerasTuner rebuilds models to reload
        checkpoints). The model is built under ``mixed_precision``'s dtype
        policy and compiled with `keras_attn.training.compile_for_training`
        (``jit_compile``: the fast path unless set).

        Args:
            hp: `keras_tuner.HyperParameters` (or a dict of values).

        Returns:
            A compiled `keras_attn.AttentionCNN`.

        Example:
        >>> import keras_tuner
        >>> model = ConvAutoencoderHyperModel().build(keras_tuner.HyperParameters())
        >>> round(float(model.optimizer.learning_rate), 6)
        0.1
        """
        hp = self._as_hp(hp)
        config = self.model_config(hp)
        keras.utils.set_random_seed(self.seed)
        with dtype_policy(self.mixed_precision):
            model = build_model(config)
        return compile_for_training(
            model,
            learning_rate=self.learning_rate(hp),
            jit_compile=self.jit_compile,
            loss="sparse_categorical_crossentropy",
            metrics=["accuracy"],
        )

    def fit(
        self,
        hp,
        model,
        x,
        y,
        validation_data=None,
        batch_size=128,
        epochs=1,
        initial_epoch=0,
        callbacks=None,
        verbose=0,
        **kwargs,
    ):
        """Train on uint8 images with `keras_attn.data.ArrayBatches`, as the protocol does.

        Batches are float32 0..255 (the model rescales), shuffled with an order
        that depends on ``seed`` and the epoch only.

        Args:
            hp: the trial's hyperparameters (unused: everything is in ``model``).
            model: the compiled model from `build`.
            x, y: training images ``(n, h, w, c)`` uint8 and integer labels.
            validation_data: ``(x_val, y_val)``; required (the objective is
                validation accuracy).
            batch_size: int, default 128.
            epochs, initial_epoch: as for ``keras.Model.fit`` (Hyperband sets both).
            callbacks: list of callbacks (KerasTuner adds its own).
            verbose: as for ``keras.Model.fit``.
            **kwargs: passed to ``keras.Model.fit``.

        Returns:
            The ``keras.callbacks.History``.

        Example:
        >>> history = hm.fit(hp, model, x, y, validation_data=(xv, yv))  # doctest: +SKIP
        """
        if validation_data is None:
            raise ValueError(
                f"The search maximises {OBJECTIVE!r}: pass validation_data=(x_val, y_val)."
            )
        train = ArrayBatches(x, y, batch_size, shuffle=True, seed=self.seed)
        val = ArrayBatches(validation_data[0], validation_data[1], batch_size)
        return model.fit(
            train,
            validation_data=val,
            epochs=epochs,
            initial_epoch=initial_epoch,
            callbacks=[_SetEpoch(train), *(callbacks or [])],
            verbose=verbose,
            **kwargs,
        )


class _SetEpoch(keras.callbacks.Callback):
    """Selects each epoch's shuffling order of an `ArrayBatches` before the epoch runs."""

    def __init__(self, batches):
        super().__init__()
        self.batches = batches

    def on_epoch_begin(self, epoch, logs=None):
        self.batches.set_epoch(epoch)


# --------------------------------------------------------------------------- tuners


def distributed_role():
    """This process's part in a distributed search, from KerasTuner's environment variables.

    Returns:
        ``"chief"`` (serves the oracle, trains nothing), ``"worker"`` (trains
        trials the chief hands out) or ``None`` (a search in one process).

    Raises:
        ValueError: ``KERASTUNER_ORACLE_IP`` is set without
            ``KERASTUNER_ORACLE_PORT`` or ``KERASTUNER_TUNER_ID``.

    Example:
    >>> distributed_role()  # KERASTUNER_ORACLE_IP unset
    """
    if "KERASTUNER_ORACLE_IP" not in os.environ:
        return None
    missing = [v for v in ("KERASTUNER_ORACLE_PORT", "KERASTUNER_TUNER_ID") if v not in os.environ]
    if missing:
        raise ValueError(
            f"KERASTUNER_ORACLE_IP is set ({os.environ['KERASTUNER_ORACLE_IP']!r}) but "
            f"{' and '.join(missing)} {'is' if len(missing) == 1 else 'are'} not. A distributed "
            "search needs all three in every process: KERASTUNER_TUNER_ID=chief in one, a "
            "unique id (tuner0, tuner1, ...) in each worker."
        )
    return "chief" if "chief" in os.environ["KERASTUNER_TUNER_ID"] else "worker"


def _check_tuner_name(tuner):
    if tuner not in TUNERS:
        raise ValueError(
            f"Unknown tuner {tuner!r}.{did_you_mean(tuner, TUNERS)} Valid tuners: "
            f"{', '.join(TUNERS)}."
        )
    return tuner


def _check_project_name(project_name):
    if not isinstance(project_name, str) or not re.fullmatch(r"[A-Za-z0-9_.-]+", project_name):
        raise ValueError(
            f"`project_name` must be a folder name of letters, digits, '_', '-' and '.', got "
            f"{project_name!r}."
        )
    if project_name in (".", ".."):
        raise ValueError(f"`project_name` cannot be {project_name!r}.")
    return project_name


def _merge_settings(caller, settings):
    """``settings`` over `SEARCH_DEFAULTS`; an unknown key is a TypeError, as Python's own."""
    for key in settings:
        if key not in SEARCH_DEFAULTS:
            raise TypeError(
                f"{caller}() got an unexpected keyword argument {key!r}."
                f"{did_you_mean(key, SEARCH_DEFAULTS)} Valid: {', '.join(SEARCH_DEFAULTS)}."
            )
    return {**SEARCH_DEFAULTS, **settings}


def check_search_settings(tuner="hyperband", *, top_k=5, **settings):
    """Check search settings before any work is done; return them normalised.

    Args:
        tuner: one of `TUNERS`.
        top_k: int >= 1, default 5 (rows of the results table).
        **settings: any other keys of `SEARCH_DEFAULTS` (see `make_tuner`):
            ``max_trials`` (int >= 1 or ``None``), ``epochs`` and
            ``batch_size`` (ints >= 1), ``factor`` (int >= 2, Hyperband),
            ``seed`` (int >= 1), ``project_name`` (a folder name),
            ``jit_compile`` (bool or ``None``), ``mixed_precision`` (``None``,
            ``"float32"``, ``"mixed_bfloat16"`` or ``"mixed_float16"``), ...

    Returns:
        dict: every key of `SEARCH_DEFAULTS` (defaults filled in) and ``top_k``.

    Raises:
        ValueError: repeating the bad value and saying what is valid.
        TypeError: a key that is not a search setting.

    Example:
    >>> check_search_settings("random", max_trials=4)["max_trials"]
    4
    """
    s = _merge_settings("check_search_settings", {**settings, "tuner": tuner})
    _check_tuner_name(s["tuner"])
    if s["tuner"] == "bayesian":
        try:
            import sklearn  # noqa: F401
        except ImportError:
            raise ImportError(
                "The bayesian tuner needs scikit-learn: pip install scikit-learn "
                "(or keras-tuner[bayesian])."
            ) from None
    _check_project_name(s["project_name"])
    if s["mixed_precision"] is not None:  # "float32" stays: it overrides the hypermodel's
        s["mixed_precision"] = check_mixed_precision(s["mixed_precision"]) or "float32"
    return {
        **s,
        "max_trials": check_int("max_trials", s["max_trials"], 1, allow_none=True),
        "epochs": check_int("epochs", s["epochs"], 1),
        "batch_size": check_int("batch_size", s["batch_size"], 1),
        "factor": check_int("factor", s["factor"], 2),
        "seed": check_int("seed", s["seed"], 1),
        "jit_compile": check_jit_compile(s["jit_compile"]),
        "overwrite": bool(s["overwrite"]),
        "top_k": check_int("top_k", top_k, 1),
    }


def _jsonable(obj):
    return json.loads(json.dumps(obj, sort_keys=True))


def search_record(
    hypermodel, tuner, *, epochs, batch_size, factor=3, seed=1, data_fingerprint=None
):
    """The settings that make trials of one project comparable (stored as its fingerprint).

    ``max_trials`` is not part of it: raising it continues a search.

    Args:
        hypermodel: a `ConvAutoencoderHyperModel`.
        tuner: one of `TUNERS`.
        epochs: epochs per trial (Hyperband: the most a trial trains).
        batch_size: training batch size.
        factor: Hyperband's reduction factor (recorded for Hyperband only).
        seed: the oracle's seed.
        data_fingerprint: str or ``None`` (unknown: not compared).

    The hypermodel's ``mixed_precision`` is recorded (as
    ``training.mixed_precision``) only when set, so float32 searches keep the
    fingerprint they always had; its ``jit_compile`` is not recorded (it
    changes results only within float tolerance).

    Returns:
        A JSON-able dict.

    Example:
    >>> rec = search_record(ConvAutoencoderHyperModel(), "random", epochs=1, batch_size=64)
    >>> rec["tuner"]["kind"], rec["training"]["epochs"]
    ('random', 1)
    """
    tuner_settings = {"kind": tuner, "seed": seed, "objective": OBJECTIVE}
    if tuner == "hyperband":
        tuner_settings["factor"] = factor
    training = {
        "epochs": epochs,
        "batch_size": batch_size,
        "optimizer": "sgd",
        "loss": "sparse_categorical_crossentropy",
    }
    if hypermodel.mixed_precision is not None:
        training["mixed_precision"] = hypermodel.mixed_precision
    return _jsonable(
        {
            "format": SPACE_FORMAT,
            "hypermodel": {
                "class": type(hypermodel).__name__,
                "base_config": hypermodel.base_config,
                "space": hypermodel.space,
                "seed": hypermodel.seed,
            },
            "tuner": tuner_settings,
            "training": training,
            "data": data_fingerprint,
        }
    )


def _flatten(d, prefix=""):
    out = {}
    for k, v in d.items():
        key = f"{prefix}{k}"
        if isinstance(v, dict) and v:
            out.update(_flatten(v, key + "."))
        else:
            out[key] = v
    return out


def _short(v, n=70):
    text = json.dumps(v)
    return text if len(text) <= n else text[: n - 3] + "..."


# What a fingerprint key that is left out means (it is recorded only when set).
_ABSENT = {"training.mixed_precision": "float32"}


def _record_differences(stored, current):
    a, b = _flatten(stored), _flatten(current)
    diffs = []
    for key in sorted(set(a) | set(b)):
        if key == "data" and (a.get(key) is None or b.get(key) is None):
            continue
        absent = _ABSENT.get(key, "<missing>")
        if a.get(key, absent) != b.get(key, absent):
            diffs.append(
                f"{key}: folder has {_short(a.get(key, absent))}, this search has "
                f"{_short(b.get(key, absent))}"
            )
    return diffs


def _write_json(path, obj):
    files.write_json(path, obj, indent=2)


def _prepare_project(project_dir, record, overwrite, role):
    project_dir = Path(project_dir)
    path = project_dir / RECORD_FILE
    if overwrite and role != "worker" and project_dir.exists():
        shutil.rmtree(project_dir)
    if path.exists():
        try:
            stored = json.loads(path.read_text())["search"]
        except (ValueError, KeyError, TypeError) as e:
            raise ValueError(
                f"{path} is damaged ({type(e).__name__}: {e}); cannot tell which search made "
                f"{project_dir}. Choose another project, or overwrite it."
            ) from None
        diffs = _record_differences(stored, record)
        if diffs:
            raise ValueError(
                f"Project folder {project_dir} was made by a different search; resuming would "
                "mix trials of two searches. Differences:\n  - "
                + "\n  - ".join(diffs[:8])
                + ("\n  - ..." if len(diffs) > 8 else "")
                + "\nChoose another project (--project / project_name=), or start this one "
                "again with --overwrite (overwrite=True), which deletes its trials."
            )
        if stored.get("data") is None and record.get("data") is not None:
            _write_json(path, {"search": record, "sha256": _record_hash(record)})
        return
    leftovers = (
        [
            p.name
            for p in project_dir.glob("*")
            if p.name == "oracle.json" or p.name.startswith("trial_")
        ]
        if project_dir.exists()
        else []
    )
    if leftovers:
        raise ValueError(
            f"Project folder {project_dir} holds a KerasTuner search ({', '.join(leftovers[:3])}"
            f"{', ...' if len(leftovers) > 3 else ''}) but no {RECORD_FILE}: it was not made by "
            "keras_attn.tuning, so there is no telling which search space it used. Choose "
            "another project, or start it again with --overwrite (overwrite=True)."
        )
    _write_json(path, {"search": record, "sha256": _record_hash(record)})


def _record_hash(record):
    return hashlib.sha256(json.dumps(record, sort_keys=True).encode()).hexdigest()


def _with_training_options(hypermodel, jit_compile, mixed_precision):
    """``hypermodel``, or a copy with ``jit_compile`` / ``mixed_precision`` replaced."""
    if jit_compile is None and mixed_precision is None:
        return hypermodel
    hypermodel = copy.copy(hypermodel)
    if jit_compile is not None:
        hypermodel.jit_compile = jit_compile
    if mixed_precision is not None:
        hypermodel.mixed_precision = check_mixed_precision(mixed_precision)
    return hypermodel


def make_tuner(hypermodel, tuner="hyperband", **settings):
    """A KerasTuner tuner for ``hypermodel`` whose project folder is checked or created.

    A new project folder gets the search's fingerprint (`search_record`); an
    existing one is resumed only if its fingerprint matches.

    Args:
        hypermodel: a `ConvAutoencoderHyperModel`.
        tuner: str, default ``"hyperband"``; one of `TUNERS` (``"random"``,
            ``"bayesian"``, ``"hyperband"``).
        **settings: keyword-only, defaults in `SEARCH_DEFAULTS`:

            - directory: str, default ``"tuning"``; the folder that holds
              projects (shared by all processes of a distributed search).
            - project_name: str, default ``"ae_search"``; the project's folder
              name.
            - max_trials: int >= 1 or ``None``. Random and Bayesian: the number
              of trials (``None``: 30). Hyperband: a cap on its trials
              (``None``: as many as its brackets hold, about 30 for 10 epochs
              and factor 3).
            - epochs: int, default 10. Epochs per trial (Hyperband:
              ``max_epochs``).
            - batch_size: int, default 128 (recorded in the fingerprint).
            - factor: int >= 2, default 3; Hyperband's reduction factor.
            - seed: int >= 1, default 1; the oracle's seed.
            - overwrite: bool, default ``False``. Delete the project folder and
              start again (ignored by distributed workers: only the chief or a
              single process deletes).
            - data_fingerprint: str or ``None``; identifies the training data.
            - jit_compile: bool or ``None`` (default: the hypermodel's, whose
              default is `keras_attn.training.fast_path`'s choice). Not part of
              the fingerprint: a search may resume with another setting.
            - mixed_precision: ``None`` (default: the hypermodel's, float32
              unless set), ``"float32"``, ``"mixed_bfloat16"`` or
              ``"mixed_float16"``. Part of the fingerprint when not float32.

            The tuner gets a copy of ``hypermodel`` with ``jit_compile`` and
            ``mixed_precision`` replaced where they are given.

    Returns:
        A ``keras_tuner`` tuner (``RandomSearch``, ``BayesianOptimization`` or
        ``Hyperband``).

    Raises:
        ValueError: an unknown tuner, ``max_trials < 1``, bad settings, or a
            project folder made by a different search.
        TypeError: an unknown keyword argument.

    Example:
    >>> hm = ConvAutoencoderHyperModel()
    >>> tuner = make_tuner(hm, "random", max_trials=4, directory="/tmp/t")  # doctest: +SKIP
    """
    s = check_search_settings(**_merge_settings("make_tuner", {**settings, "tuner": tuner}))
    tuner, max_trials, epochs, factor, seed = (
        s[k] for k in ("tuner", "max_trials", "epochs", "factor", "seed")
    )
    if not isinstance(hypermodel, ConvAutoencoderHyperModel):
        raise ValueError(
            f"`hypermodel` must be a ConvAutoencoderHyperModel, got {type(hypermodel).__name__}."
        )
    hypermodel = _with_training_options(hypermodel, s["jit_compile"], s["mixed_precision"])
    role = distributed_role()
    record = search_record(
        hypermodel,
        tuner,
        epochs=epochs,
        batch_size=s["batch_size"],
        factor=factor,
        seed=seed,
        data_fingerprint=s["data_fingerprint"],
    )
    directory, project_name = s["directory"], s["project_name"]
    _prepare_project(Path(directory) / project_name, record, s["overwrite"], role)

    common = {
        "hypermodel": hypermodel,
        "objective": keras_tuner.Objective(OBJECTIVE, direction="max"),
        "seed": seed,
        "directory": str(directory),
        "project_name": project_name,
        "overwrite": False,  # done above, and never by a worker
    }
    if tuner == "random":
        kt = keras_tuner.RandomSearch(max_trials=max_trials or 30, **common)
    elif tuner == "bayesian":
        trials = max_trials or 30
        kt = keras_tuner.BayesianOptimization(
            max_trials=trials, num_initial_points=min(10, max(3, trials // 3)), **common
        )
    else:
        kt = keras_tuner.Hyperband(max_epochs=epochs, factor=factor, **common)
        if max_trials is not None and isinstance(kt.oracle, keras_tuner.Oracle):
            kt.oracle.max_trials = max_trials
    return kt


# --------------------------------------------------------------------------- search


def _hyperband_plan(max_epochs, factor):
    """(trials, epochs trained in all) of one Hyperband iteration, by KerasTuner's formulas."""
    brackets, e = 0, max_epochs
    while e >= 1:
        e, brackets = e / factor, brackets + 1
    end_size = math.ceil(1 + math.log(max_epochs, factor))
    trials = epochs = 0
    for b in range(brackets):
        last = 0
        for r in range(b + 1):
            size = math.ceil(end_size / (b + 1) * factor ** (b - r))
            ep = math.ceil(max_epochs / factor ** (b - r))
            trials, epochs, last = trials + size, epochs + size * (ep - last), ep
    return trials, epochs


def _training_summary(hypermodel):
    """How trials compile and why: jit (fast path or as asked) and the dtype policy."""
    fast = fast_path()
    jit = hypermodel.jit_compile
    if jit is None:
        jit, why = fast["jit_compile"], f"fast path: {fast['reason']}"
    elif jit == fast["jit_compile"]:
        why = "as asked; also the fast path"
    else:
        why = f"as asked; the fast path is {fast['jit_compile']}: {fast['reason']}"
    text = f"jit_compile={jit} ({why})"
    if jit and keras.backend.backend() == "tensorflow":
        try:
            from tensorflow.python.framework.config import is_op_determinism_enabled
        except ImportError:  # pragma: no cover
            is_op_determinism_enabled = None
        if is_op_determinism_enabled and is_op_determinism_enabled():
            text += " but Keras turns XLA off while TensorFlow op determinism is on"
    policy = hypermodel.mixed_precision
    text += (
        f"; dtype policy {policy} (as asked)"
        if policy
        else "; dtype policy float32 (mixed precision is opt-in)"
    )
    return text


def read_trials(project_dir):
    """Every trial of a project, read from its ``trial_*/trial.json`` files.

    Works in every process of a distributed search (they share the folder).

    Args:
        project_dir: the project folder (``directory/project_name``).

    Returns:
        list of ``keras_tuner.engine.trial.Trial``, by trial id.

    Example:
    >>> [t.status for t in read_trials("tuning/ae_hyperband")]  # doctest: +SKIP
    ['COMPLETED', 'COMPLETED']
    """
    from keras_tuner.engine.trial import Trial

    trials = []
    for fname in sorted(glob.glob(os.path.join(str(project_dir), "trial_*", "trial.json"))):
        try:
            trials.append(Trial.load(fname))
        except (ValueError, KeyError, OSError):
            continue  # being written by another process
    return sorted(trials, key=lambda t: t.trial_id)


def check_trials(project_dir):
    """Raise if any trial of the project FAILED, with that trial's error.

    KerasTuner records a crashing trial as FAILED and moves on (a search of
    fewer than 3 trials does not even raise), and a resumed search never
    retries it. Call this after every search.

    Args:
        project_dir: the project folder.

    Raises:
        RuntimeError: naming the failed trials, with the first one's traceback.

    Example:
    >>> check_trials("tuning/ae_hyperband")  # doctest: +SKIP
    """
    failed = [t for t in read_trials(project_dir) if t.status in ("FAILED", "INVALID")]
    if failed:
        message = (failed[0].message or "(no message)").strip()
        raise RuntimeError(
            f"{len(failed)} trial(s) of {project_dir} failed "
            f"({', '.join(t.trial_id for t in failed)}); a resumed search never retries them. "
            f"Fix the cause and start again with --overwrite (overwrite=True). "
            f"Trial {failed[0].trial_id}'s error:\n{message}"
        )


def search(hypermodel, x_train, y_train, x_val, y_val, *, verbose=1, log=print, **settings):
    """Run (or resume) a search and check that no trial failed.

    In a distributed search the chief serves the oracle until every worker is
    done (it trains nothing and may pass ``None`` for the arrays); each worker
    trains the trials the chief hands out.

    Args:
        hypermodel: a `ConvAutoencoderHyperModel`.
        x_train, y_train, x_val, y_val: uint8 images ``(n, h, w, c)`` and
            integer labels.
        verbose: 0 (quiet), 1 (KerasTuner's trial summaries) or 2 (also one
            line per epoch).
        log: callable taking one line of progress text, default ``print``.
        **settings: keyword-only, defaults in `SEARCH_DEFAULTS`: ``tuner``
            (default ``"hyperband"``), ``directory``, ``project_name``,
            ``max_trials``, ``epochs``, ``batch_size``, ``factor``, ``seed``,
            ``overwrite``, ``jit_compile``, ``mixed_precision``: see
            `make_tuner`; ``data_fingerprint``: str, default a SHA-256 of the
            four arrays.

    Returns:
        The tuner (``tuner.project_dir`` is the project folder).

    Raises:
        ValueError: bad settings, data that does not fit the HyperModel, or a
            project folder made by a different search.
        TypeError: an unknown keyword argument.
        RuntimeError: a trial failed (with its error).

    Example:
    >>> tuner = search(hm, x, y, xv, yv, tuner="random", max_trials=2, epochs=1)  # doctest: +SKIP
    """
    s = _merge_settings("search", settings)
    role = distributed_role()
    log = log or (lambda line: None)
    if role != "chief" or x_train is not None:
        for name, x in (("x_train", x_train), ("x_val", x_val)):
            if x is None or tuple(np.shape(x)[1:]) != tuple(hypermodel.base_config["input_shape"]):
                raise ValueError(
                    f"`{name}` must be images of shape (n, "
                    f"{', '.join(map(str, hypermodel.base_config['input_shape']))}) as the "
                    f"HyperModel's base config says, got shape {np.shape(x)}."
                )
        n_classes = hypermodel.base_config["num_classes"]
        for name, y in (("y_train", y_train), ("y_val", y_val)):
            y = np.asarray(y)
            if y.ndim != 1 or (y.size and (y.min() < 0 or y.max() >= n_classes)):
                raise ValueError(
                    f"`{name}` must be integer labels in 0..{n_classes - 1} of shape (n,), "
                    f"got shape {y.shape}."
                )
        if s["data_fingerprint"] is None:
            s["data_fingerprint"] = fingerprint_arrays(x_train, y_train, x_val, y_val)
    kt = make_tuner(hypermodel, **s)
    tuner, max_trials, epochs, batch_size, factor = (
        s[k] for k in ("tuner", "max_trials", "epochs", "batch_size", "factor")
    )
    project_dir = kt.project_dir
    before = read_trials(project_dir)
    done_before = {t.trial_id for t in before if t.status == "COMPLETED"}
    log(hypermodel.describe())
    if tuner == "hyperband":
        n_trials, n_epochs = _hyperband_plan(epochs, factor)
        cap = (
            f"Hyperband: {n_trials} trials, {n_epochs} epochs in all (at most {epochs} a "
            f"trial, factor {factor})" + (f", capped at {max_trials} trials" if max_trials else "")
        )
        if n_trials < 3:
            cap += f"; few trials: Hyperband needs more epochs than {epochs} to compare configs"
    else:
        cap = f"{max_trials or 30} trials of {epochs} epoch(s)"
    state = f"resuming: {len(done_before)} trial(s) finished" if before else "new project"
    where = {"chief": "chief (serves the oracle, trains nothing)", "worker": "worker"}.get(
        role, "one process"
    )
    log(f"{tuner} search in {project_dir}: {state}; {cap}; {where}")
    if role != "chief":
        log(f"training: {_training_summary(kt.hypermodel)}")
    if role == "chief":
        log(
            f"chief: serving on {os.environ['KERASTUNER_ORACLE_IP']}:"
            f"{os.environ['KERASTUNER_ORACLE_PORT']} until every worker is done"
        )
    t0 = time.perf_counter()
    if role == "chief":
        kt.search(verbose=verbose)
    else:
        kt.search(
            x_train,
            y_train,
            validation_data=(x_val, y_val),
            epochs=epochs,
            batch_size=batch_size,
            verbose=verbose,
        )
    seconds = time.perf_counter() - t0
    check_trials(project_dir)
    after = read_trials(project_dir)
    new = [t for t in after if t.status == "COMPLETED" and t.trial_id not in done_before]
    per = f", {seconds / len(new):.1f}s per new trial" if new and role is None else ""
    log(f"search finished in {seconds:.1f}s: {len(new)} new trial(s){per}")
    return kt


# --------------------------------------------------------------------------- results


def _trial_epochs(trial, record):
    values = trial.hyperparameters.values
    return int(values.get("tuner/epochs", record["training"]["epochs"]))


def _read_record(project_dir):
    path = Path(project_dir) / RECORD_FILE
    if not path.exists():
        raise FileNotFoundError(
            f"{path} not found: {project_dir} is not a keras_attn search project."
        )
    return json.loads(path.read_text())["search"]


def top_trials(project_dir, hypermodel, k=5):
    """The ``k`` best finished trials, one per distinct (config, learning rate), best first.

    Hyperband trains promising configs again for more epochs under new trial
    ids; only each config's best trial is listed.

    Args:
        project_dir: the project folder.
        hypermodel: the `ConvAutoencoderHyperModel` of the search.
        k: int >= 1, default 5.

    Returns:
        list of dicts: ``rank``, ``trial_id``, ``val_accuracy``,
        ``trainable_params``, ``epochs``, ``learning_rate``, ``placement``,
        ``sites``, ``attention_position``, ``eca``, ``filters``,
        ``final_kernel``, ``activation``, ``hyperparameters`` and ``config``
        (the complete model config).

    Example:
    >>> rows = top_trials("tuning/ae_hyperband", hm, k=3)  # doctest: +SKIP
    """
    k = check_int("k", k, 1)
    record = _read_record(project_dir)
    done = [t for t in read_trials(project_dir) if t.status == "COMPLETED" and t.score is not None]
    done.sort(key=lambda t: (-t.score, -_trial_epochs(t, record), t.trial_id))
    project = Path(project_dir).name
    rows, seen = [], set()
    for trial in done:
        hp_values = {
            key: v
            for key, v in trial.hyperparameters.values.items()
            if not key.startswith("tuner/")
        }
        values = hypermodel.values(hp_values)
        name = re.sub(r"[^A-Za-z0-9_]", "_", f"{project}_trial_{trial.trial_id}")
        config = hypermodel.model_config(hp_values, name=name)
        key = json.dumps({**config, "name": None, "lr": values["learning_rate"]}, sort_keys=True)
        if key in seen:
            continue
        seen.add(key)
        model = build_model(config)
        params = count_trainable_params(model)
        del model
        rows.append(
            {
                "rank": len(rows) + 1,
                "trial_id": trial.trial_id,
                "val_accuracy": float(trial.score),
                "trainable_params": params,
                "epochs": _trial_epochs(trial, record),
                "learning_rate": values["learning_rate"],
                "placement": values["sites"],
                "sites": config["sites"],
                "attention_position": config["attention_position"],
                "eca": values["eca"],
                "filters": config["conv_ae"]["filters"],
                "final_kernel": config["conv_ae"]["final_kernel"],
                "activation": config["conv_ae"]["activation"],
                "hyperparameters": hp_values,
                "config": config,
            }
        )
        if len(rows) == k:
            break
    keras.backend.clear_session()
    return rows


_COLUMNS = (
    ("rank", "rank"),
    ("trial", "trial_id"),
    ("val accuracy", "val_accuracy"),
    ("trainable params", "trainable_params"),
    ("epochs", "epochs"),
    ("lr", "learning_rate"),
    ("sites", "sites"),
    ("position", "attention_position"),
    ("ECA", "eca"),
    ("AE filters", "filters"),
    ("final kernel", "final_kernel"),
    ("activation", "activation"),
)


def _cell(key, row):
    v = row[key]
    if key == "val_accuracy":
        return f"{v:.4f}"
    if key == "trainable_params":
        return f"{v:,}"
    if key == "sites":
        return f"{','.join(map(str, v))} ({row['placement']})"
    if key == "filters":
        return "-".join(map(str, v))
    if key == "eca":
        return "yes" if v else "no"
    if key == "learning_rate":
        return f"{v:g}"
    return str(v)


def format_table(rows):
    """The rows of `top_trials` as a Markdown table.

    Args:
        rows: list of dicts from `top_trials`.

    Returns:
        str, one header line, one rule and one line per row.

    Example:
    >>> print(format_table(top_trials("tuning/ae_hyperband", hm)))  # doctest: +SKIP
    """
    header = "| " + " | ".join(title for title, _ in _COLUMNS) + " |"
    rule = (
        "|"
        + "|".join(
            "---:"
            if key
            in (
                "rank",
                "val_accuracy",
                "trainable_params",
                "epochs",
                "learning_rate",
                "final_kernel",
            )
            else "---"
            for _, key in _COLUMNS
        )
        + "|"
    )
    lines = [header, rule]
    for row in rows:
        lines.append("| " + " | ".join(_cell(key, row) for _, key in _COLUMNS) + " |")
    return "\n".join(lines)


def protocol_command(
    best_config_path, *, learning_rate=None, epochs=None, batch_size=None, runs=16, extra_args=()
):
    """The one-line command that runs the multi-seed protocol on a config against ``cnn``.

    Args:
        best_config_path: path of the config JSON.
        learning_rate: float or ``None`` (``--lr``; the protocol's default otherwise).
        epochs: int or ``None`` (``--epochs``).
        batch_size: int or ``None`` (``--batch-size``).
        runs: int, default 16 (the study's).
        extra_args: further arguments (e.g. the data flags of the search).

    Returns:
        str, a shell command.

    Example:
    >>> protocol_command("tuning/x/best_config.json", learning_rate=0.03)
    'python scripts/protocol.py --models tuning/x/best_config.json,cnn --runs 16 --lr 0.03'
    """
    args = [
        "python",
        "scripts/protocol.py",
        "--models",
        f"{best_config_path},cnn",
        "--runs",
        str(runs),
    ]
    if epochs is not None:
        args += ["--epochs", str(epochs)]
    if learning_rate is not None:
        args += ["--lr", f"{learning_rate:g}"]
    if batch_size is not None:
        args += ["--batch-size", str(batch_size)]
    args += [str(a) for a in extra_args]
    return " ".join(shlex.quote(a) for a in args)


def write_results(project_dir, hypermodel, k=5, *, protocol_args=()):
    """Write the top-k table, the best config and the protocol command into the project.

    Files (in ``project_dir``): ``best_config.json`` (a complete config:
    ``keras_attn.build(json.load(f))`` builds it unchanged), ``best_trial.json``
    (its score, learning rate, epochs, hyperparameters and the protocol
    command), ``top_trials.md`` and ``top_trials.csv``.

    Args:
        project_dir: the project folder.
        hypermodel: the `ConvAutoencoderHyperModel` of the search.
        k: int, default 5; rows of the table.
        protocol_args: extra arguments for the protocol command (data flags).

    Returns:
        dict: ``rows`` (from `top_trials`), ``table`` (Markdown), ``command``
        and the paths ``best_config``, ``best_trial``, ``markdown``, ``csv``.

    Raises:
        RuntimeError: no trial has finished yet.

    Example:
    >>> report = write_results("tuning/ae_hyperband", hm)  # doctest: +SKIP
    >>> print(report["table"]); print(report["command"])  # doctest: +SKIP
    """
    project_dir = Path(project_dir)
    rows = top_trials(project_dir, hypermodel, k)
    if not rows:
        raise RuntimeError(f"No finished trial in {project_dir}: nothing to report yet.")
    record = _read_record(project_dir)
    best = rows[0]
    paths = {
        "best_config": project_dir / "best_config.json",
        "best_trial": project_dir / "best_trial.json",
        "markdown": project_dir / "top_trials.md",
        "csv": project_dir / "top_trials.csv",
    }
    extra = list(protocol_args)
    policy = check_mixed_precision(hypermodel.mixed_precision)
    if policy:  # the protocol trains the config as it was tuned
        extra += ["--mixed-precision", policy]
    command = protocol_command(
        paths["best_config"],
        learning_rate=best["learning_rate"],
        batch_size=record["training"]["batch_size"],
        extra_args=extra,
    )
    _write_json(paths["best_config"], best["config"])
    _write_json(
        paths["best_trial"],
        {
            **{
                key: best[key]
                for key in (
                    "trial_id",
                    "val_accuracy",
                    "trainable_params",
                    "epochs",
                    "learning_rate",
                    "hyperparameters",
                )
            },
            "batch_size": record["training"]["batch_size"],
            "tuner": record["tuner"],
            "config_file": paths["best_config"].name,
            "protocol_command": command,
        },
    )
    table = format_table(rows)
    base = build_model(hypermodel.base_config)
    base_params = count_trainable_params(base)
    del base
    keras.backend.clear_session()
    markdown = (
        f"# Top {len(rows)} trials of {project_dir.name} ({record['tuner']['kind']} search, "
        f"objective {OBJECTIVE})\n\n{table}\n\n"
        f"The base network without gates (`{hypermodel.base_config['name']}`) has "
        f"{base_params:,} trainable parameters. A single trial's accuracy is not evidence: "
        f"compare the best config with `cnn` over many seeds:\n\n    {command}\n"
    )
    tmp = paths["markdown"].with_name(f".{paths['markdown'].name}.{os.getpid()}.tmp")
    tmp.write_text(markdown)
    os.replace(tmp, paths["markdown"])
    buf = io.StringIO()
    fields = [key for _, key in _COLUMNS] + ["placement", "config"]
    writer = csv.DictWriter(buf, fieldnames=fields, lineterminator="\n")
    writer.writeheader()
    for row in rows:
        out = {key: row[key] for key in fields}
        out["sites"] = " ".join(map(str, row["sites"]))
        out["filters"] = " ".join(map(str, row["filters"]))
        out["config"] = json.dumps(row["config"], sort_keys=True)
        writer.writerow(out)
    tmp = paths["csv"].with_name(f".{paths['csv'].name}.{os.getpid()}.tmp")
    tmp.write_text(buf.getvalue())
    os.replace(tmp, paths["csv"])
    return {
        "rows": rows,
        "table": table,
        "command": command,
        **{k: str(v) for k, v in paths.items()},
    }
