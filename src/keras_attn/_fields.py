"""Settings declared once: each field's default, help, flag and checks, and what is made from it.

A settings dataclass declares every field with `setting`. From those declarations
`check_fields` validates an instance, `add_arguments` makes the command line's flags,
`given` reads back the flags a command line gave, and `markdown_table` writes the
reference table of the docs, so a setting's name, type, default and help are written
in one place. Nothing here imports Keras: a command checks its arguments before a
backend loads.
"""

from __future__ import annotations

import argparse
import copy
import dataclasses
import json
import math

__all__ = ["add_arguments", "check_fields", "default_of", "given", "markdown_table", "setting"]


def setting(default, help, *, flag=None, choices=None, low=None, high=None, comparable=False):
    """A dataclass field declared with what the command line, the checks and the docs need.

    Args:
        default: the default value (a dict or list is copied for each instance).
        help: one phrase saying what the setting is.
        flag: the command-line flag (default ``--name-with-dashes``); a pair
            ``(on, off)`` for a setting that may be ``None``, ``True`` or ``False``;
            ``False``: not on the command line.
        choices: the valid values of a string setting (``None`` is valid when the
            default is ``None``).
        low, high: bounds of a number: ``low <= value``, ``value < high``.
        comparable: ``True``: part of the settings id; ``"set"``: part of it only when
            it differs from the default (so ids made before it existed stay the same);
            ``False``: not part of it; any other text: how it enters the id, in words.

    Example:
        >>> import dataclasses
        >>> @dataclasses.dataclass
        ... class Demo:
        ...     runs: int = setting(16, "trainings per model", low=1)
        >>> dataclasses.fields(Demo)[0].metadata["help"]
        'trainings per model'
    """
    meta = {"help": help, "flag": flag, "choices": choices, "low": low, "high": high}
    meta["comparable"] = comparable
    if isinstance(default, (dict, list)):
        return dataclasses.field(default_factory=lambda: copy.deepcopy(default), metadata=meta)
    return dataclasses.field(default=default, metadata=meta)


def default_of(field):
    """A declared field's default value (a fresh copy of a dict or list).

    Example:
        >>> import dataclasses
        >>> @dataclasses.dataclass
        ... class Demo:
        ...     steps: list = setting([0.5, 0.75], "when the learning rate drops")
        >>> default_of(dataclasses.fields(Demo)[0])
        [0.5, 0.75]
    """
    if field.default is dataclasses.MISSING:
        return field.default_factory()
    return field.default


def _kind(field):
    """``"int"``, ``"float"``, ``"str"``, ``"bool"`` or ``"dict"``, and whether None is valid."""
    kind = field.type
    text = kind if isinstance(kind, str) else getattr(kind, "__name__", str(kind))
    text = text.replace(" ", "")
    optional = "None" in text.split("|")
    base = next(t for t in text.split("|") if t != "None")
    return base, optional


def _flags(field):
    flag = field.metadata.get("flag")
    if flag is False:
        return ()
    if flag is None:
        return ("--" + field.name.replace("_", "-"),)
    return tuple(flag) if isinstance(flag, (tuple, list)) else (flag,)


def _declared(cls, names=None):
    fields = {f.name: f for f in dataclasses.fields(cls) if "help" in f.metadata}
    if names is None:
        return list(fields.values())
    unknown = [n for n in names if n not in fields]
    if unknown:
        raise ValueError(f"{cls.__name__} declares no setting {unknown}.")
    return [fields[n] for n in names]


def _bad(name, value, what):
    return ValueError(f"`{name}` must be {what}, got {value!r}.")


def check_fields(obj):
    """Check every declared field of ``obj`` against its declaration; normalise numbers.

    Raises ``ValueError`` naming the setting, what is valid and the value received.

    Example:
        >>> import dataclasses
        >>> @dataclasses.dataclass
        ... class Demo:
        ...     runs: int = setting(16, "trainings per model", low=1)
        ...     def __post_init__(self):
        ...         check_fields(self)
        >>> Demo(runs=0)
        Traceback (most recent call last):
        ...
        ValueError: `runs` must be an integer >= 1, got 0.
    """
    for field in _declared(type(obj)):
        name, value, meta = field.name, getattr(obj, field.name), field.metadata
        kind, optional = _kind(field)
        if value is None:
            if not optional:
                raise _bad(name, value, f"a {kind} (it cannot be None)")
            continue
        low, high, choices = meta["low"], meta["high"], meta["choices"]
        if kind in ("int", "float"):
            ok = isinstance(value, (int, float)) and not isinstance(value, bool)
            if kind == "int":
                ok = ok and float(value).is_integer()
            what = "an integer" if kind == "int" else "a number"
            bounds = [
                f">= {low}" if low is not None else "",
                f"< {high}" if high is not None else "",
            ]
            what += " " + " and ".join(b for b in bounds if b) if any(bounds) else ""
            if ok and (not math.isfinite(value) or (low is not None and value < low)):
                ok = False
            if ok and high is not None and value >= high:
                ok = False
            if not ok:
                raise _bad(name, value, what.strip() + (" or None" if optional else ""))
            setattr(obj, name, int(value) if kind == "int" else float(value))
        elif kind == "bool":
            if not isinstance(value, bool) and type(value).__name__ != "bool_":
                raise _bad(name, value, "True, False or None" if optional else "True or False")
            setattr(obj, name, bool(value))
        elif kind == "dict":
            if not isinstance(value, dict):
                raise _bad(name, value, "a dict")
        elif kind == "list":
            numbers = isinstance(value, (list, tuple)) and all(
                isinstance(v, (int, float)) and not isinstance(v, bool) for v in value
            )
            inside = numbers and all((low is None or v >= low) and (high is None or v < high)
                                     for v in value)  # fmt: skip
            if not inside:
                bounds = f" in [{low}, {high})" if low is not None and high is not None else ""
                raise _bad(name, value, f"a list of numbers{bounds}")
            setattr(obj, name, [float(v) for v in value])
        elif choices is not None and value not in choices:
            none = "None or " if optional else ""
            raise _bad(name, value, f"{none}one of {tuple(choices)}")
        elif not isinstance(value, str) or not value:
            raise _bad(name, value, "a non-empty string" + (" or None" if optional else ""))


def _override(text):
    if "=" not in text:
        raise argparse.ArgumentTypeError(f"expected KEY=VALUE, got {text!r}")
    key, value = text.split("=", 1)
    try:
        return key, json.loads(value)
    except json.JSONDecodeError:
        return key, value


def _numbers(text):
    try:
        return [float(v) for v in text.split(",") if v.strip()]
    except ValueError:
        raise argparse.ArgumentTypeError(
            f"expected numbers separated by commas, got {text!r}"
        ) from None


def _help(field):
    meta, default = field.metadata, default_of(field)
    text = meta["help"]
    text = text.replace("%", "%%")  # argparse formats help with %; it lists the choices
    said = any(f"({w}: {default}" in text for w in ("study", "assumed"))
    if default not in (None, False, dataclasses.MISSING) and not isinstance(default, dict):
        default = ",".join(map(str, default)) if isinstance(default, list) else default
        text += "" if said else f"; default {default}"
    return text


def add_arguments(parser, cls, names=None, *, titles=None):
    """Add the flags of ``cls``'s declared settings (``names``: only these) to ``parser``.

    Each flag's default is ``None`` (not given), so `given` tells what the command line
    set; a bool defaulting to True is turned off by its flag, a dict setting takes
    ``KEY=VALUE`` (VALUE as JSON) and repeats.

    Args:
        parser: an ``argparse.ArgumentParser`` or argument group.
        cls: the settings dataclass.
        names: the settings to add, in this order (default: every declared one).
        titles: ``{title: [names]}``: put those settings' flags in argument groups.

    Example:
        >>> import argparse, dataclasses
        >>> @dataclasses.dataclass
        ... class Demo:
        ...     learning_rate: float = setting(0.1, "step size", flag="--lr", low=0)
        >>> ap = argparse.ArgumentParser()
        >>> add_arguments(ap, Demo)
        >>> given(ap.parse_args(["--lr", "0.5"]), Demo)
        {'learning_rate': 0.5}
    """
    groups = {}
    for title, members in (titles or {}).items():
        group = parser.add_argument_group(title)
        groups.update({name: group for name in members})
    for field in _declared(cls, names):
        flags = _flags(field)
        if not flags:
            continue
        where = groups.get(field.name, parser)
        kind, _ = _kind(field)
        meta, dest = field.metadata, field.name
        if kind == "bool" and len(flags) == 2:  # None, True or False
            pair = where.add_mutually_exclusive_group()
            pair.add_argument(flags[0], dest=dest, action="store_true", default=None,
                              help=_help(field))  # fmt: skip
            pair.add_argument(flags[1], dest=dest, action="store_false", help=f"not {flags[0]}")
        elif kind == "bool":
            action = "store_false" if field.default else "store_true"
            where.add_argument(flags[0], dest=dest, action=action, default=None,
                               help=_help(field))  # fmt: skip
        elif kind == "dict":
            where.add_argument(flags[0], dest=dest, type=_override, action="append",
                               metavar="KEY=VALUE", help=_help(field) + "; repeatable")  # fmt: skip
        elif kind == "list":
            where.add_argument(flags[0], dest=dest, type=_numbers, metavar="X,Y,...",
                               help=_help(field))  # fmt: skip
        else:
            cast = {"int": int, "float": float}.get(kind, str)
            where.add_argument(flags[0], dest=dest, type=cast, default=None,
                               choices=meta["choices"], help=_help(field))  # fmt: skip


def given(args, cls, names=None):
    """``{setting: value}`` of the flags `add_arguments` added that the command line gave.

    Example: see `add_arguments`.
    """
    out = {}
    for field in _declared(cls, names):
        if not _flags(field) or getattr(args, field.name, None) is None:
            continue
        value = getattr(args, field.name)
        out[field.name] = dict(value) if _kind(field)[0] == "dict" else value
    return out


def markdown_table(cls, names=None):
    """The declared settings of ``cls`` as a Markdown table: setting, flag, default, id, help.

    Example:
        >>> import dataclasses
        >>> @dataclasses.dataclass
        ... class Demo:
        ...     runs: int = setting(16, "trainings per model", low=1, comparable=True)
        >>> print(markdown_table(Demo))
        | setting | flag | default | in the settings id | what it is |
        |---|---|---|---|---|
        | `runs` | `--runs` | `16` | yes | trainings per model |
    """
    rows = [
        "| setting | flag | default | in the settings id | what it is |",
        "|---|---|---|---|---|",
    ]
    for field in _declared(cls, names):
        meta = field.metadata
        default = default_of(field)
        flags = " / ".join(f"`{f}`" for f in _flags(field)) or "(none)"
        said = meta["comparable"]
        comparable = {True: "yes", "set": "when set", False: "no"}.get(said, said)
        text = meta["help"] + (
            f" ({', '.join(map(str, meta['choices']))})" if meta["choices"] else ""
        )
        rows.append(
            f"| `{field.name}` | {flags} | `{json.dumps(default)}` | {comparable} | {text} |"
        )
    return "\n".join(rows)
