"""What the variant benchmark measures: the variants (names or builders) and the settings."""

from __future__ import annotations

from keras_attn.benchmark.ratios import BASELINE
from keras_attn.protocol.training import MIXED_PRECISION_POLICIES, fast_path
from keras_attn.runtime import backend

__all__ = ["model_specs", "setting_specs"]

_SETTING_KEYS = ("jit_compile", "mixed_precision", "eager")


def model_specs(models):
    """``{label: build_fn}`` for the variants to measure, the baseline first if not asked for.

    Args:
        models: None (every registered variant), a list or a comma-separated
            str of variant names; an entry may also be a ``(label, build_fn)``
            pair.

    Example:
    >>> list(model_specs("cnn_eca,cnn_cbam"))
    ['cnn', 'cnn_eca', 'cnn_cbam']
    """
    import keras_attn

    available = list(keras_attn.list_models())
    if models is None:
        names = available
    elif isinstance(models, str):
        names = [m.strip() for m in models.split(",") if m.strip()]
    else:
        names = list(models)
    if not names:
        raise ValueError("`models` is empty: give at least one variant name.")
    specs = {}
    for item in names:
        if isinstance(item, tuple) and len(item) == 2 and callable(item[1]):
            label, build_fn = item
        elif isinstance(item, str):
            if item not in available:
                keras_attn.get_config(item)  # raises, naming close matches
            label, build_fn = item, (lambda n=item: keras_attn.build(n))
        else:
            raise ValueError(
                f"Each entry of `models` must be a variant name or a (label, build_fn) pair, "
                f"got {item!r}."
            )
        if label in specs:
            raise ValueError(f"`models` names {label!r} twice.")
        specs[label] = build_fn
    if BASELINE not in specs:  # ratios need the baseline measured in the same run
        specs = {BASELINE: lambda: keras_attn.build(BASELINE), **specs}
    return specs


def setting_specs(settings=None, jit_compile=None, mixed_precision=None, run_eagerly=False):
    """The settings to measure, each with its label (``graph``, ``jit``, ``eager+bfloat16``...).

    Args:
        settings: list of dicts with keys ``jit_compile``, ``mixed_precision``,
            ``eager``; or None: one setting from the three other arguments.
        jit_compile: bool or None (`keras_attn.protocol.training.fast_path`'s choice).
        mixed_precision: None, ``"mixed_bfloat16"`` or ``"mixed_float16"``.
        run_eagerly: bool.

    Example:
    >>> [s["label"] for s in setting_specs([{"eager": True},
    ...                                     {"eager": True, "mixed_precision": "mixed_bfloat16"}])]
    ['eager', 'eager+bfloat16']
    """
    if settings is None:
        settings = [
            {"jit_compile": jit_compile, "mixed_precision": mixed_precision, "eager": run_eagerly}
        ]
    out = []
    for s in settings:
        unknown = set(s) - set(_SETTING_KEYS)
        if unknown:
            raise ValueError(
                f"Unknown benchmark setting(s) {sorted(unknown)}: use {', '.join(_SETTING_KEYS)}."
            )
        jit = s.get("jit_compile")
        if jit is None:
            jit = fast_path()["jit_compile"]
        eager = bool(s.get("eager", False))
        policy = s.get("mixed_precision")
        if policy not in (None, *MIXED_PRECISION_POLICIES):
            raise ValueError(
                f"`mixed_precision` must be None, 'mixed_float16' or 'mixed_bfloat16', "
                f"got {policy!r}."
            )
        if eager:
            label = "eager"
        else:
            label = "jit" if jit else "graph" if backend() == "tensorflow" else "nojit"
        if policy:
            label += "+" + policy.replace("mixed_", "")
        out.append(
            {
                "label": label,
                "jit_compile": bool(jit and not eager),
                "eager": eager,
                "mixed_precision": policy,
            }
        )
    labels = [s["label"] for s in out]
    if len(set(labels)) != len(labels):
        raise ValueError(f"Benchmark settings repeat themselves: {labels}.")
    return out
