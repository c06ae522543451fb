"""Hidden widths of the gates' bottlenecks, rounded as timm rounds them."""

from keras_attn._checks import check_positive_int

__all__ = ["reduced_width"]


def reduced_width(channels, reduction, divisor=1, round_limit=0.0):
    """``channels / reduction`` rounded to the nearest multiple of ``divisor`` (at least one).

    timm's ``make_divisible(channels / reduction, divisor, round_limit=round_limit)``:
    halves round up, the result is never below ``divisor``, and a rounding down that
    leaves less than ``round_limit`` of the value adds one ``divisor`` back. With
    ``divisor=1`` it is ``C / r`` rounded to the nearest integer (at least 1).

    Example:
    >>> reduced_width(64, 16, 8), reduced_width(64, 16), reduced_width(24, 16)
    (8, 4, 2)
    >>> reduced_width(72, 8, 8), reduced_width(72, 8, 8, round_limit=0.9)
    (8, 16)
    """
    check_positive_int("channels", channels)
    check_positive_int("reduction", reduction)
    check_positive_int("divisor", divisor)
    value = channels / reduction
    width = max(divisor, int(value + divisor / 2) // divisor * divisor)
    return width + divisor if width < round_limit * value else width
