"""Where and how this process computes: threads, deterministic ops, device, versions.

The protocol records these with every result and the benchmark with every
timing, so a figure always says what produced it:

- `configure_runtime`: pin CPU threads and turn deterministic ops on or off for
  the current backend; `runtime_settings` returns what it last set.
- `accelerators`, `device_description`, `cpu_name`: the device the backend
  computes on.
- `dist_version`: an installed distribution's version, or ``None``.

Example:
>>> device_description().split(":")[0] in ("CPU", "GPU")
True
"""

from __future__ import annotations

import os
import platform

__all__ = [
    "accelerators",
    "configure_runtime",
    "cpu_name",
    "device_description",
    "dist_version",
    "runtime_settings",
]

_SETTINGS = {}  # what configure_runtime last set, in its own words


def _backend():
    import keras

    return keras.backend.backend()


def _tf_determinism():
    """TensorFlow's private op-determinism switches (no public getter or "off"), or None."""
    try:
        from tensorflow.python.framework import config
    except ImportError:  # pragma: no cover - TensorFlow without that module
        return None
    return config if hasattr(config, "is_op_determinism_enabled") else None


def configure_runtime(threads=None, deterministic=True) -> dict:
    """Pin CPU threads and turn deterministic ops on (or off) for the current backend.

    Call it before the backend runs its first operation: TensorFlow fixes its
    thread pools then, and later calls keep the pools it has and report them.
    Deterministic ops can be switched either way at any time.

    - TensorFlow: intra-op threads = ``threads``, inter-op threads = 1,
      ``tf.config.experimental.enable_op_determinism()`` (or its private
      counterpart to turn it off again).
    - PyTorch: ``torch.set_num_threads`` and ``torch.use_deterministic_algorithms``.
    - JAX: on a CPU it is deterministic; its threads follow ``XLA_FLAGS``.

    Args:
        threads: intra-op threads (``None``: ``os.cpu_count()``).
        deterministic: bool, default True. Deterministic ops on (True) or off.

    Returns:
        dict: the settings in effect (recorded with each result).

    Example:
    >>> info = configure_runtime(threads=2)  # doctest: +SKIP
    >>> info["deterministic"], runtime_settings() == info  # doctest: +SKIP
    (True, True)
    """
    threads = int(threads or os.cpu_count() or 1)
    deterministic = bool(deterministic)
    backend = _backend()
    info = {"requested_threads": threads, "deterministic": deterministic}
    if backend == "tensorflow":
        import tensorflow as tf

        for setter, value in (
            (tf.config.threading.set_intra_op_parallelism_threads, threads),
            (tf.config.threading.set_inter_op_parallelism_threads, 1),
        ):
            try:
                setter(value)
            except RuntimeError:
                pass  # runtime already initialised: keep (and report) its pools
        config = _tf_determinism()
        if deterministic:
            tf.config.experimental.enable_op_determinism()
        elif config is not None and config.is_op_determinism_enabled():
            config.disable_op_determinism()
        if config is not None:
            info["deterministic"] = bool(config.is_op_determinism_enabled())
        info["intra_op_threads"] = tf.config.threading.get_intra_op_parallelism_threads()
        info["inter_op_threads"] = tf.config.threading.get_inter_op_parallelism_threads()
    elif backend == "torch":
        import torch

        torch.set_num_threads(threads)
        torch.use_deterministic_algorithms(deterministic)
        info["intra_op_threads"] = torch.get_num_threads()
    else:
        info["intra_op_threads"] = None
    info["xla_flags"] = os.environ.get("XLA_FLAGS")
    _SETTINGS.clear()
    _SETTINGS.update(info)
    return dict(info)


def runtime_settings() -> dict:
    """What `configure_runtime` last set in this process (empty if it never ran).

    Example:
    >>> isinstance(runtime_settings(), dict)
    True
    """
    return dict(_SETTINGS)


def accelerators():
    """Names of the accelerators the current backend sees (empty on a CPU).

    Example:
    >>> accelerators()  # doctest: +SKIP
    ['gpu:NVIDIA H100 80GB HBM3']
    """
    backend = _backend()
    if backend == "jax":
        import jax

        return [f"{d.platform}:{d.device_kind}" for d in jax.devices() if d.platform != "cpu"]
    if backend == "tensorflow":
        import tensorflow as tf

        found = []
        for d in tf.config.list_physical_devices("GPU"):
            details = tf.config.experimental.get_device_details(d)
            found.append(f"{d.name}:{details.get('device_name', 'GPU')}")
        return found
    if backend == "torch":
        import torch

        if torch.cuda.is_available():
            return [
                f"cuda:{i}:{torch.cuda.get_device_name(i)}"
                for i in range(torch.cuda.device_count())
            ]
    return []


def cpu_name():
    """The CPU's model name (``/proc/cpuinfo``, else what `platform` knows).

    Example:
    >>> isinstance(cpu_name(), str)
    True
    """
    try:
        with open("/proc/cpuinfo") as f:
            for line in f:
                if line.startswith("model name"):
                    return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


def device_description():
    """One line naming the device the current backend computes on.

    Example:
    >>> device_description()  # doctest: +SKIP
    'CPU: AMD EPYC 9B14 (2 cores usable)'
    """
    found = accelerators()
    if found:
        return "GPU: " + ", ".join(found)
    cores = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count()
    return f"CPU: {cpu_name()} ({cores} cores usable)"


def dist_version(name):
    """The installed version of distribution ``name``, or ``None`` if absent.

    Example:
    >>> dist_version("numpy") is not None, dist_version("no-such-distribution")
    (True, None)
    """
    try:
        from importlib.metadata import version

        return version(name)
    except Exception:  # noqa: BLE001 - absent or odd distributions: record None
        return None
