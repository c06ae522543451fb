"""Progress output of the protocol: epoch lines, in-epoch progress, durations, the ETA."""

from __future__ import annotations

import math
import time

import keras
import numpy as np

__all__ = ["fmt_duration"]


class EpochProgress(keras.callbacks.Callback):
    """Prints 'batch i/n' inside long epochs, at most every ``every`` seconds.

    A Keras callback for ``model.fit``; the JAX trainer calls the same two methods
    (without a loss, which would wait for the device).
    """

    def __init__(self, log, prefix, num_batches, every):
        super().__init__()
        self.log, self.prefix, self.num_batches, self.every = log, prefix, num_batches, every

    def on_epoch_begin(self, epoch, logs=None):
        self.t0 = self.last = time.perf_counter()

    def on_train_batch_end(self, batch, logs=None):
        now = time.perf_counter()
        if self.every and now - self.last >= self.every:
            self.last = now
            done = batch + 1
            eta = (now - self.t0) / done * (self.num_batches - done)
            loss = (logs or {}).get("loss")
            loss_text = f" loss {float(loss):.4f}" if loss is not None else ""
            self.log(
                f"{self.prefix} batch {done}/{self.num_batches}{loss_text} "
                f"(epoch ETA {fmt_duration(eta)})"
            )


def fmt_duration(seconds):
    """A duration as ``1h02m``, ``3m05s`` or ``42s`` (``?`` when unknown).

    Example:
        >>> fmt_duration(3725), fmt_duration(185), fmt_duration(None)
        ('1h02m', '3m05s', '?')
    """
    if seconds is None or not math.isfinite(seconds):
        return "?"
    seconds = int(round(seconds))
    h, rem = divmod(seconds, 3600)
    m, s = divmod(rem, 60)
    return f"{h}h{m:02d}m" if h else (f"{m}m{s:02d}s" if m else f"{s}s")


def epoch_line(prefix, settings, state, eta):
    eta_text = f" | protocol ETA {fmt_duration(eta())}" if eta else ""
    return (
        f"{prefix} epoch {state['epochs_done']}/{settings.epochs}: train loss "
        f"{state['train_loss'][-1]:.4f} acc {state['train_accuracy'][-1]:.4f} | val loss "
        f"{state['val_loss'][-1]:.4f} acc {state['val_accuracy'][-1]:.4f} (best "
        f"{state['best_val_accuracy']:.4f} @ epoch {state['best_epoch']}) | "
        f"{state['epoch_seconds'][-1]:.1f}s{eta_text}"
    )


def diverged_line(prefix, state):
    return (
        f"{prefix} epoch {state['epochs_done']}: train loss {state['train_loss'][-1]}, val loss "
        f"{state['val_loss'][-1]}: diverged; stopping this run"
    )


def eta_seconds(remaining, times):
    """Seconds left: remaining epochs x mean epoch time (per model where measured)."""
    if not times:
        return None
    overall = float(np.mean([s for v in times.values() for s in v]))
    return sum(n * float(np.mean(times.get(m, [overall]))) for (m, _), n in remaining.items())
