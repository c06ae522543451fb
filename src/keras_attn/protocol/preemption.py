"""A job's preemption signal, acted on at once but obeyed at the training loop's next checkpoint.

submitit's handler for the preemption signal (``SIGUSR2``) checkpoints the call, requeues the
job and ends the process by raising `SystemExit` wherever the main thread happens to be. When
that is inside a ``__del__`` (TensorFlow frees its traced functions there, Python only
prints what they raise) or under a bare ``except:`` (Keras and TensorFlow have many), the
exit is lost and the job trains on after it has been requeued. Within `deferred_exit`, the
handler still runs when the signal comes (the requeue is not delayed), but what it raises
is kept and raised again by `exit_if_preempted`, which the training loop calls after each
checkpoint.

Example:
    >>> import os, signal
    >>> def handler(signum, frame):
    ...     raise SystemExit(144)
    >>> previous = signal.signal(signal.SIGUSR2, handler)
    >>> with deferred_exit([signal.SIGUSR2]):
    ...     os.kill(os.getpid(), signal.SIGUSR2)
    ...     preempted()
    ...     try:
    ...         exit_if_preempted()
    ...     except SystemExit as stop:
    ...         print("stopped with", stop.code)
    True
    stopped with 144
    >>> _ = signal.signal(signal.SIGUSR2, previous)
"""

from __future__ import annotations

import contextlib
import signal
import threading

__all__ = ["deferred_exit", "exit_if_preempted", "preempted"]

# What a deferred handler raised, waiting for the next checkpoint (at most one).
_PENDING: list[BaseException] = []


def _deferring(handler):
    def on_signal(signum, frame):
        if _PENDING:  # already preempted: the first signal's requeue stands
            return
        try:
            handler(signum, frame)
        except BaseException as stop:  # SystemExit (requeued) or submitit's "not requeued"
            _PENDING.append(stop)

    return on_signal


@contextlib.contextmanager
def deferred_exit(signals):
    """Within the block, what the handlers of ``signals`` raise waits for `exit_if_preempted`.

    Only callable handlers are wrapped (not ``SIG_DFL`` or ``SIG_IGN``), and only in the
    main thread (the only one Python lets set handlers); the previous handlers come back
    at the end of the block.

    Example:
        >>> import signal
        >>> with deferred_exit([signal.SIGUSR2]):
        ...     preempted()
        False
    """
    previous = {}
    if threading.current_thread() is threading.main_thread():
        for signum in signals:
            handler = signal.getsignal(signum)
            if callable(handler):
                previous[signum] = signal.signal(signum, _deferring(handler))
    _PENDING.clear()
    try:
        yield
    finally:
        for signum, handler in previous.items():
            signal.signal(signum, handler)
        _PENDING.clear()


def preempted():
    """Whether a deferred handler has run: the job is to stop at its next checkpoint."""
    return bool(_PENDING)


def exit_if_preempted():
    """Raise what a deferred preemption handler raised (its `SystemExit`), if one ran.

    The training loop calls it after writing each checkpoint; outside `deferred_exit`
    it does nothing.
    """
    if _PENDING:
        raise _PENDING.pop()
