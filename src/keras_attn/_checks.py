"""Argument checks and the "did you mean" hint that every module's errors share.

Each check raises ``ValueError`` that names the argument, repeats the value
received and says what is valid.

Example:
>>> check_int("epochs", 3), check_int("seed", None, 0, allow_none=True)
(3, None)
>>> did_you_mean("cnn_eac", ["cnn3", "cnn_eca"])
" Did you mean 'cnn_eca'?"
"""

from __future__ import annotations

import difflib
import numbers

__all__ = ["check_int", "check_positive_int", "did_you_mean"]


def did_you_mean(value, valid, cutoff=0.6) -> str:
    """``" Did you mean 'a', 'b'?"`` for the entries of ``valid`` close to ``value``, else ``""``.

    Example:
    >>> did_you_mean("hyperbnd", ["random", "bayesian", "hyperband"])
    " Did you mean 'hyperband'?"
    """
    close = difflib.get_close_matches(str(value), [str(v) for v in valid], n=3, cutoff=cutoff)
    return f" Did you mean {', '.join(repr(c) for c in close)}?" if close else ""


def check_int(name, value, low=1, *, allow_none=False):
    """``value`` as an int if it is an integer >= ``low`` (or ``None`` when allowed).

    Example:
    >>> check_int("factor", 3, 2)
    3
    """
    if value is None and allow_none:
        return None
    if isinstance(value, bool) or not isinstance(value, numbers.Integral) or value < low:
        what = f"an integer >= {low}" + (" or None" if allow_none else "")
        raise ValueError(f"`{name}` must be {what}, got {value!r}.")
    return int(value)


def check_positive_int(name, value):
    """``value`` if it is an integer >= 1.

    Example:
    >>> check_positive_int("batch_size", 128)
    128
    """
    if isinstance(value, bool) or not isinstance(value, numbers.Integral) or value < 1:
        raise ValueError(f"`{name}` must be a positive integer, got {value!r}.")
    return value


def check_sites(sites, count, *, noun, scope):
    """``sites`` as a sorted list of distinct numbers in 1..``count``; a clear error otherwise.

    ``noun`` names one site ("site", "block") and ``scope`` the network, in the messages.

    >>> check_sites([3, 1], 4, noun="site", scope="this network (2 blocks)")
    [1, 3]
    """
    if isinstance(sites, int) and not isinstance(sites, bool):
        sites = [sites]
    if not isinstance(sites, (list, tuple)) or not sites:
        raise ValueError(
            f'`sites` must be "all" or a non-empty list of {noun} numbers, got {sites!r}.'
        )
    for s in sites:
        if isinstance(s, bool) or not isinstance(s, int) or not 1 <= s <= count:
            raise ValueError(f"Site {s!r} is out of range: {scope} has {noun}s 1 to {count}.")
    if len(set(sites)) != len(sites):
        raise ValueError(f"`sites` lists a {noun} twice: {list(sites)}.")
    return sorted(sites)


def check_input_shape(shape):
    """``shape`` as a ``[height, width, channels]`` list of positive ints; a clear error otherwise.

    >>> check_input_shape((32, 32, 3))
    [32, 32, 3]
    """
    if not isinstance(shape, (list, tuple)) or len(shape) != 3:
        raise ValueError(f"`input_shape` must be (height, width, channels), rank 3, got {shape!r}.")
    for v in shape:
        check_positive_int("input_shape entries", v)
    return list(shape)


def check_rate(name, value):
    """``value`` if it is a number in [0, 1)."""
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not 0 <= value < 1:
        raise ValueError(f"`{name}` must be a number in [0, 1), got {value!r}.")
    return value


def check_positive(name, value):
    """``value`` if it is a number > 0."""
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not value > 0:
        raise ValueError(f"`{name}` must be a positive number, got {value!r}.")
    return value


def check_widths(name, value):
    """``value`` as a list if it is a non-empty list of positive integers (channel counts)."""
    ok = isinstance(value, (list, tuple)) and value
    if not ok or any(isinstance(v, bool) or not isinstance(v, int) or v < 1 for v in value):
        raise ValueError(f"`{name}` must be a non-empty list of positive integers, got {value!r}.")
    return list(value)


def one_of(*choices):
    """A check that ``value`` is one of ``choices``."""

    def check(name, value):
        if value not in choices:
            raise ValueError(f"`{name}` must be one of {', '.join(choices)}, got {value!r}.")
        return value

    return check
