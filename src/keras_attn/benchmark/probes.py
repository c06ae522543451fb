"""What the benchmark reads from the machine: host and device memory, and the environment."""

from __future__ import annotations

import datetime
import os
import threading

from keras_attn.runtime import accelerators, backend, thread_pools
from keras_attn.runtime import environment as runtime_environment

__all__ = ["MB", "RssSampler", "benchmark_environment", "device_peak_mb", "reset_device_peak"]

#: Bytes in a MiB.
MB = 1024.0 * 1024.0


def benchmark_environment():
    """`keras_attn.runtime.environment` plus what affects speed: thread pools, dtype, load."""
    import keras

    load = os.getloadavg() if hasattr(os, "getloadavg") else None
    return {
        **runtime_environment(),
        "thread_pools": thread_pools(),
        "dtype_policy": keras.config.dtype_policy().name,
        "load_average_at_start": list(load) if load else None,
        "date": datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds"),
    }


class RssSampler(threading.Thread):
    """A thread that samples the process' resident set size; `take_peak` returns the peak.

    Args:
        interval: float, seconds between samples (default 0.02).

    Example:
    >>> sampler = RssSampler(); sampler.start()
    >>> block = bytearray(50 * 2**20)  # 50 MiB
    >>> sampler.take_peak() >= sampler.rss() > 0
    True
    >>> sampler.stop()
    """

    def __init__(self, interval=0.02):
        super().__init__(daemon=True, name="rss-sampler")
        self._interval = interval
        self._stop_event = threading.Event()
        self._lock = threading.Lock()
        self._peak = self.rss()

    @staticmethod
    def rss():
        """Resident set size in bytes (Linux ``/proc``; psutil elsewhere, 0 without it)."""
        try:
            with open("/proc/self/statm") as f:
                return int(f.read().split()[1]) * os.sysconf("SC_PAGE_SIZE")
        except (OSError, ValueError, IndexError):
            try:
                import psutil
            except ImportError:
                return 0
            return psutil.Process().memory_info().rss

    def run(self):
        while not self._stop_event.wait(self._interval):
            value = self.rss()
            with self._lock:
                self._peak = max(self._peak, value)

    def take_peak(self):
        """The peak since the last call (bytes); the next peak starts from now."""
        value = self.rss()
        with self._lock:
            peak, self._peak = max(self._peak, value), value
        return peak

    def stop(self):
        """End the sampling thread."""
        self._stop_event.set()


def reset_device_peak():
    """Start a new device-memory peak (TensorFlow or PyTorch GPU; nothing elsewhere).

    JAX has no reset: its peak covers the whole process.
    """
    name = backend()
    try:
        if name == "tensorflow" and accelerators():
            import tensorflow as tf

            tf.config.experimental.reset_memory_stats("GPU:0")
        elif name == "torch":
            import torch

            if torch.cuda.is_available():
                torch.cuda.reset_peak_memory_stats()
    except Exception:  # noqa: BLE001 - memory statistics are best effort
        pass


def device_peak_mb():
    """Peak device memory (MiB) since the last reset, or None without a device."""
    name = backend()
    try:
        if name == "jax":
            import jax

            device = jax.devices()[0]
            if device.platform == "cpu":
                return None
            stats = device.memory_stats() or {}
            peak = stats.get("peak_bytes_in_use")
            return None if peak is None else peak / MB
        if name == "tensorflow" and accelerators():
            import tensorflow as tf

            return tf.config.experimental.get_memory_info("GPU:0")["peak"] / MB
        if name == "torch":
            import torch

            if torch.cuda.is_available():
                return torch.cuda.max_memory_allocated() / MB
    except Exception:  # noqa: BLE001
        return None
    return None
