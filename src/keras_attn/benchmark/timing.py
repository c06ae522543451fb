"""Timed windows: wall and process CPU seconds per call, after waiting for the device."""

from __future__ import annotations

import time

__all__ = ["sync", "time_window"]


def sync(value):
    """Wait until ``value`` (a tensor, or a list or tuple of them) is computed.

    Converting to NumPy blocks until the device has finished; numbers and
    ``None`` pass through.

    Example:
    >>> import keras
    >>> sync([keras.ops.ones((2, 2)), None, 3.0])
    """
    import keras

    if isinstance(value, (list, tuple)):
        for v in value:
            sync(v)
    elif value is not None and not isinstance(value, (int, float)):
        keras.ops.convert_to_numpy(value)


def time_window(fn, steps):
    """``(wall seconds, process CPU seconds)`` per call of ``fn``, over ``steps`` calls.

    The last result is synced (`sync`) before the clock stops. CPU time (all
    threads of this process) is what a step costs the machine; unlike wall
    time it hardly grows when other processes compete for the cores.

    Args:
        fn: callable without arguments (one training step, one inference batch).
        steps: int, calls in the window.

    Example:
    >>> wall, cpu = time_window(lambda: sum(range(1000)), steps=3)
    >>> wall > 0 and cpu >= 0
    True
    """
    start, cpu_start = time.perf_counter(), time.process_time()
    out = None
    for _ in range(steps):
        out = fn()
    sync(out)
    return (time.perf_counter() - start) / steps, (time.process_time() - cpu_start) / steps
