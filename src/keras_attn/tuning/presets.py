"""Search settings: the tuners, their defaults, the presets of ``keras-attn tune``, checks.

Also what the command line's model flags (``--backbone``, ``--base``, ``--gates``,
``--space``) become: the HyperModel's base and space (`model_settings`).
"""

from __future__ import annotations

import json
import re
from pathlib import Path

from keras_attn._checks import check_int, did_you_mean
from keras_attn.protocol.training import check_jit_compile, check_mixed_precision
from keras_attn.tuning import backbones

__all__ = [
    "OBJECTIVE",
    "PRESETS",
    "SEARCH_DEFAULTS",
    "TUNERS",
    "check_search_settings",
    "merge_settings",
    "model_settings",
    "parse_gates",
]

#: The tuners ``make_tuner`` knows, by the name the command line uses.
TUNERS = ("random", "bayesian", "hyperband")
#: What the search maximises.
OBJECTIVE = "val_accuracy"
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

#: Named search settings for ``keras-attn tune``; flags given on the command line win.
PRESETS = {
    "default": {
        "description": "Hyperband on CIFAR-10 (45,000 train / 5,000 val), at most 10 epochs "
        "a trial (the study's budget), the full search space",
        "settings": {"tuner": "hyperband", "epochs": 10, "batch_size": 128},
        "project": "ae_{tuner}",
    },
    "smoke": {
        "description": "a few minutes on a laptop CPU: random search, 3 trials x 1 epoch on "
        "2,000 train / 500 val images",
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


def merge_settings(caller, settings):
    """``settings`` over `SEARCH_DEFAULTS`; an unknown key is a TypeError, as Python's own.

    Args:
        caller: the function's name, for the error message.
        settings: dict of keyword arguments.

    Example:
    >>> merge_settings("search", {"epochs": 2})["epochs"]
    2
    >>> merge_settings("search", {"epoch": 2})  # doctest: +ELLIPSIS
    Traceback (most recent call last):
    TypeError: search() got an unexpected keyword argument 'epoch'. Did you mean 'epochs'? ...
    """
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
    s = merge_settings("check_search_settings", {**settings, "tuner": tuner})
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


def parse_gates(text):
    """The ``--gates`` flag: ``"all"``, or registered gate names separated by commas.

    Args:
        text: str or ``None`` (no gate search).

    Returns:
        ``None``, ``"all"`` or a list of gate names (the space's ``"gates"``).

    Raises:
        ValueError: an unknown or repeated name, naming the valid gates.

    Example:
    >>> parse_gates("eca, cbam,conv_ae"), parse_gates("all"), parse_gates(None)
    (['eca', 'cbam', 'conv_ae'], 'all', None)
    >>> parse_gates("eca,sse")  # doctest: +ELLIPSIS
    Traceback (most recent call last):
    ValueError: --gates: unknown gate 'sse'. Did you mean 'se', 'ese'? Valid gates: eca, cbam, ...
    """
    if text is None:
        return None
    if text.strip() == "all":
        return "all"
    names = [name.strip() for name in text.split(",") if name.strip()]
    valid = backbones.gate_names()
    if not names:
        raise ValueError(
            f'--gates: expected "all" or gate names separated by commas, got {text!r}. '
            f"Valid gates: {', '.join(valid)}."
        )
    for name in names:
        if name not in valid:
            raise ValueError(
                f"--gates: unknown gate {name!r}.{did_you_mean(name, valid)} Valid gates: "
                f'{", ".join(valid)} (or "all").'
            )
    if len(set(names)) != len(names):
        raise ValueError(f"--gates lists a gate twice: {text!r}.")
    return names


def _read_base(base):
    """A model name stays a name; a JSON file (``*.json`` or an existing file) is read."""
    path = Path(base).expanduser()
    if base.endswith(".json") or path.is_file():
        return json.loads(path.read_text())
    return base


def model_settings(*, backbone=None, base="cnn", gates=None, space=None):
    """The HyperModel's ``base`` and ``space`` from the command line's model flags.

    Args:
        backbone: str or ``None``; a backbone name (`keras_attn.zoo.list_backbones`:
            ``cnn``, ``cnn3``, the registered CIFAR ResNets).
        base: str, default ``"cnn"``; a model name or the path of a config
            JSON file (read here). Not together with another ``backbone``.
        gates: ``None`` (the conv-AE gate alone), ``"all"``, a list of gate
            names, or the ``--gates`` text (`parse_gates`).
        space: dict or ``None``; the ``--space`` changes. Its own
            ``"gates"`` must agree with ``gates`` when both are given.

    Returns:
        dict: ``base`` (a name or a config dict) and ``space`` (dict or ``None``).

    Raises:
        ValueError: an unknown backbone or gate, or flags that disagree.

    Example:
    >>> model_settings(backbone="cnn3", gates="eca,conv_ae")
    {'base': 'cnn3', 'space': {'gates': ['eca', 'conv_ae']}}
    >>> model_settings()
    {'base': 'cnn', 'space': None}
    """
    if isinstance(gates, str):
        gates = parse_gates(gates)
    if backbone is not None:
        backbones.check_backbone(backbone)
        if base not in (None, "cnn", backbone):
            raise ValueError(
                f"--backbone {backbone} and --base {base} name two networks: give one of them "
                "(--base takes a config JSON file, --backbone a name)."
            )
        base = backbone
    base = _read_base(base if base is not None else "cnn")
    if gates is not None:
        given = (space or {}).get("gates")
        if given is not None and given != gates:
            raise ValueError(
                f"--gates ({gates!r}) and --space's 'gates' ({given!r}) disagree: give the gate "
                "choices once."
            )
        space = {**(space or {}), "gates": gates}
    return {"base": base, "space": space}
