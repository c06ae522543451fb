"""How the report writes numbers: percentages, p-values, intervals, counts, run ranges.

Example:
>>> pct(0.74523), pct(0.0128, signed=True), p_text(0.01834), ci_text(0.7393, 0.7511)
('74.52', '+1.28', '0.018', '[73.93, 75.11]')
"""

from __future__ import annotations

import math

__all__ = ["ci_text", "int_ranges", "is_missing", "p_text", "params_text", "pct"]


def is_missing(x):
    """Whether ``x`` is ``None`` or a float NaN.

    Example:
    >>> is_missing(None), is_missing(float("nan")), is_missing(0.0)
    (True, True, False)
    """
    return x is None or (isinstance(x, float) and math.isnan(x))


def pct(x, digits=2, signed=False):
    """A fraction as a percentage (or percentage points) with ``digits`` decimals; n/a if missing.

    Example:
    >>> pct(0.7), pct(None), pct(-0.001, signed=True)
    ('70.00', 'n/a', '-0.10')
    """
    if is_missing(x):
        return "n/a"
    return f"{100 * x:+.{digits}f}" if signed else f"{100 * x:.{digits}f}"


def p_text(p):
    """A p-value with two significant digits, ``<1e-4`` below that, n/a if missing.

    Example:
    >>> p_text(0.5812), p_text(3e-6), p_text(float("nan"))
    ('0.58', '<1e-4', 'n/a')
    """
    if is_missing(p):
        return "n/a"
    return f"{p:.2g}" if p >= 1e-4 else "<1e-4"


def ci_text(low, high, signed=False):
    """An interval of fractions as ``[low, high]`` in percent; n/a if missing.

    Example:
    >>> ci_text(-0.002, 0.011, signed=True)
    '[-0.20, +1.10]'
    """
    if is_missing(low) or is_missing(high):
        return "n/a"
    return f"[{pct(low, signed=signed)}, {pct(high, signed=signed)}]"


def params_text(p):
    """A parameter count with thousands separators (several counts: comma-separated).

    Example:
    >>> params_text(2625866), params_text([1, 2000])
    ('2,625,866', '1, 2,000')
    """
    if isinstance(p, int):
        return f"{p:,}"
    if p is None:
        return "n/a"
    return ", ".join(f"{v:,}" for v in p if v is not None) or "n/a"


def int_ranges(values):
    """Sorted integers as compact ranges.

    Example:
    >>> int_ranges([3, 0, 1, 2, 5, 7, 6])
    '0-3, 5-7'
    """
    values = sorted(set(values))
    parts, start = [], None
    for i, v in enumerate(values):
        if start is None:
            start = v
        if i + 1 == len(values) or values[i + 1] != v + 1:
            parts.append(str(v) if v == start else f"{start}-{v}")
            start = None
    return ", ".join(parts)
