"""A time budget for the protocol: start no run or group that would not finish in time."""

from __future__ import annotations

import math
import re
import time

import numpy as np

__all__ = ["TimeBudget", "parse_duration"]


def parse_duration(text):
    """Seconds in a duration: a number of seconds, or with a unit: ``"90s"``, ``"8m"``, ``"2h"``.

    Units combine (``"1h30m"``). ``None`` gives ``None`` (no budget).

    Example:
        >>> parse_duration("8m"), parse_duration("1h30m"), parse_duration(45)
        (480.0, 5400.0, 45.0)
    """
    if text is None:
        return None
    if isinstance(text, (int, float)) and not isinstance(text, bool):
        seconds = float(text)
    else:
        s = str(text).strip().lower()
        parts = re.fullmatch(r"(?:(\d+(?:\.\d+)?)h)?(?:(\d+(?:\.\d+)?)m)?(?:(\d+(?:\.\d+)?)s?)?", s)
        if not s or parts is None or not any(parts.groups()):
            raise ValueError(
                f"A time budget must be seconds or a duration such as '90s', '8m', '2h' or "
                f"'1h30m', got {text!r}."
            )
        h, m, sec = (float(g) if g else 0.0 for g in parts.groups())
        seconds = 3600 * h + 60 * m + sec
    if not seconds > 0 or not math.isfinite(seconds):
        raise ValueError(f"A time budget must be positive, got {text!r}.")
    return seconds


_clock = time.monotonic  # the budget's clock (tests replace it)


class TimeBudget:
    """Decides whether the next group of runs fits in what is left of a time budget.

    A group's time is estimated, in this order, from groups of the same model
    finished in this process (their whole wall time, build and compilation
    included), from the records of that model already in the output folder
    written on the same device, backend and trainer, or from another measured
    model scaled by the ratio of multiply-accumulates per image (models measured
    in this process first, then the records). With no estimate at all the group
    starts: nothing has been measured yet.

    Args:
        seconds: the budget, from now.
        macs: callable giving a model name's multiply-accumulates per image
            (`keras_attn.flops.count_macs` of the built model); ``None``: no
            scaling between models.

    Example:
        >>> budget = TimeBudget(600, macs={"cnn": 79e6, "cnn_conv_ae": 92e6}.get)
        >>> budget.estimate("cnn", 8, 10) is None  # nothing measured yet: start
        True
        >>> budget.record("cnn", 8, 10, 150.0)  # a group of 8 took 150 s for 10 epochs
        >>> budget.estimate("cnn", 8, 10), round(budget.estimate("cnn_conv_ae", 8, 10))
        (150.0, 349)
    """

    MARGIN = 1.15  # records leave out model building and compilation
    # Scaling by MACs misses element-wise work, most of what the gates cost
    # (docs/performance.md).
    MAC_MARGIN = 2.0

    def __init__(self, seconds, macs=None):
        self.deadline = _clock() + seconds
        self.seconds = seconds
        self.measured = {}  # model -> (seconds per epoch of a group, its size)
        self.prior = {}  # model -> seconds per run-epoch, from existing records
        self.macs = macs

    def left(self):
        """Seconds left (negative once the budget is spent)."""
        return self.deadline - _clock()

    def add_records(self, records, backend, device, trainer=None):
        """Learn from finished records made on this device and backend (and ``trainer``)."""
        per = {}
        for r in records:
            env = r.get("environment") or {}
            if env.get("backend") != backend or env.get("device") != device:
                continue
            if trainer and (r.get("training") or {}).get("trainer", "fit") != trainer:
                continue
            epochs = r.get("epochs_trained") or 0
            if epochs and r.get("wall_time_s"):
                per.setdefault(r["model"], []).append(r["wall_time_s"] / epochs)
        for model, values in per.items():
            self.prior[model] = self.MARGIN * float(np.mean(values))

    def record(self, model, size, epochs, seconds):
        """A group of ``size`` runs of ``model`` trained ``epochs`` epochs in ``seconds``."""
        if epochs > 0:
            self.measured[model] = (seconds / epochs, size)

    def estimate(self, model, size, epochs):
        """Seconds a group of ``size`` runs of ``model`` needs for ``epochs`` epochs, or None."""
        if model in self.measured:
            per_epoch, measured_size = self.measured[model]
            return per_epoch * epochs * max(1.0, size / measured_size)
        if model in self.prior:
            return self.prior[model] * size * epochs
        known = [(m, per_epoch / n) for m, (per_epoch, n) in self.measured.items()]
        known = known or list(self.prior.items())
        if not known or self.macs is None:
            return None
        per_mac = max(s / self.macs(m) for m, s in known)
        return self.MAC_MARGIN * per_mac * self.macs(model) * size * epochs
