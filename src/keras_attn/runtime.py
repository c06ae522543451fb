"""Where and how this process computes: threads, deterministic ops, device, versions.

The protocol records these with every result and the benchmark with every
timing, so a figure always says what produced it:

- `configure_runtime`: pin CPU threads and turn deterministic ops on or off for
  the current backend; `runtime_settings` returns what it last set.
- `accelerators`, `device_description`, `cpu_name`: the device the backend
  computes on.
- `dist_version`: an installed distribution's version, or ``None``; `versions`,
  the versions of the libraries that computed a result; `environment`, all of
  the above in one JSON-able dict (what records and benchmarks store).

Example:
>>> device_description().split(":")[0] in ("CPU", "GPU")
True
"""

from __future__ import annotations

import os
import platform

__all__ = [
    "accelerators",
    "backend",
    "configure_runtime",
    "cpu_name",
    "device_description",
    "dist_version",
    "environment",
    "runtime_settings",
    "thread_pools",
    "versions",
]

_SETTINGS = {}  # what configure_runtime last set, in its own words


def backend():
    """The Keras backend in use: ``"tensorflow"``, ``"jax"`` or ``"torch"``.

    Example:
    >>> backend() in ("tensorflow", "jax", "torch")
    True
    """
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

    Example (what the protocol calls before it trains):
    >>> info = configure_runtime(threads=2, deterministic=True)
    >>> info["deterministic"], info["requested_threads"], runtime_settings() == info
    (True, 2, True)
    """
    threads = int(threads or os.cpu_count() or 1)
    deterministic = bool(deterministic)
    name = backend()
    info = {"requested_threads": threads, "deterministic": deterministic}
    if name == "tensorflow":
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
    elif name == "torch":
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


def thread_pools() -> dict:
    """The thread settings in effect: cores, OMP/XLA flags and the backend's own pools.

    Example:
    >>> thread_pools()["os_cpu_count"] == os.cpu_count()
    True
    """
    name = backend()
    info = {
        "os_cpu_count": os.cpu_count(),
        "usable_cores": len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else None,
        "OMP_NUM_THREADS": os.environ.get("OMP_NUM_THREADS"),
        "XLA_FLAGS": os.environ.get("XLA_FLAGS"),
    }
    if name == "tensorflow":
        import tensorflow as tf

        # 0 means "TensorFlow picks" (all cores).
        info["tf_intra_op"] = tf.config.threading.get_intra_op_parallelism_threads()
        info["tf_inter_op"] = tf.config.threading.get_inter_op_parallelism_threads()
        config = _tf_determinism()
        info["tf_op_determinism"] = config.is_op_determinism_enabled() if config else None
    elif name == "torch":
        import torch

        info["torch_threads"] = torch.get_num_threads()
    return info


def runtime_settings() -> dict:
    """What `configure_runtime` last set in this process (empty if it never ran).

    ``deterministic`` is TensorFlow's switch as it is now, should anything have
    turned it since.
    """
    info = dict(_SETTINGS)
    if info and backend() == "tensorflow":
        config = _tf_determinism()
        if config is not None:
            info["deterministic"] = bool(config.is_op_determinism_enabled())
    return info


def accelerators():
    """Names of the accelerators the current backend sees (empty on a CPU); e.g.
    ``['gpu:NVIDIA H200']`` with JAX on one H200.
    """
    name = backend()
    if name == "jax":
        import jax

        return [f"{d.platform}:{d.device_kind}" for d in jax.devices() if d.platform != "cpu"]
    if name == "tensorflow":
        import tensorflow as tf

        found = []
        for d in tf.config.list_physical_devices("GPU"):
            details = tf.config.experimental.get_device_details(d)
            found.append(f"{d.name}:{details.get('device_name', 'GPU')}")
        return found
    if name == "torch":
        import torch

        if torch.cuda.is_available():
            return [
                f"cuda:{i}:{torch.cuda.get_device_name(i)}"
                for i in range(torch.cuda.device_count())
            ]
    return []


def cpu_name():
    """The CPU's model name (``/proc/cpuinfo``, else what `platform` knows)."""
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

    Example (``'CPU: AMD EPYC 9B14 (2 cores usable)'``, ``'GPU: gpu:NVIDIA H200'``):
    >>> device_description().split(":")[0] in ("CPU", "GPU")
    True
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


#: The libraries each backend computes with (their versions go into every record).
BACKEND_LIBRARIES = {
    "tensorflow": ("tensorflow", "tensorflow-cpu"),
    "jax": ("jax", "jaxlib"),
    "torch": ("torch",),
}


def versions(data_kind=None):
    """Versions of keras_attn, Keras, NumPy, Python and the current backend's libraries.

    Args:
        data_kind: ``"tfds"`` or ``"folder"``: adds the library that read the data
            (tensorflow-datasets, Pillow).

    Example:
    >>> sorted(versions())[:3]
    ['keras', 'keras_attn', 'numpy']
    """
    import keras
    import numpy as np

    import keras_attn

    found = {
        "keras_attn": keras_attn.__version__,
        "keras": keras.__version__,
        "numpy": np.__version__,
        "python": platform.python_version(),
    }
    for lib in BACKEND_LIBRARIES.get(backend(), ()):
        v = dist_version(lib)
        if v:
            found[lib] = v
    reader = {"tfds": "tensorflow-datasets", "folder": "pillow"}.get(data_kind)
    if reader:
        found[reader] = dist_version(reader)
    return found


def environment(data_kind=None) -> dict:
    """Backend, device, library versions, threads and determinism flags, JSON-able.

    Args:
        data_kind: as for `versions`.

    Example:
    >>> environment()["backend"] in ("tensorflow", "jax", "torch")
    True
    """
    return {
        "backend": backend(),
        "device": device_description(),
        "versions": versions(data_kind),
        "platform": platform.platform(),
        "host": platform.node(),
        "threads": runtime_settings(),
        "TF_ENABLE_ONEDNN_OPTS": os.environ.get("TF_ENABLE_ONEDNN_OPTS", "unset (TF default: on)"),
        "TF_DETERMINISTIC_OPS": os.environ.get("TF_DETERMINISTIC_OPS"),
    }
