"""The input pipeline alone (`ArrayBatches`), and ``model.fit`` on it against bare steps."""

from __future__ import annotations

import statistics
import time

from keras_attn._checks import check_positive_int

__all__ = ["benchmark_pipeline", "time_fit"]


def _random_images(seed, n, input_shape):
    import numpy as np

    rng = np.random.default_rng(seed)
    x = rng.integers(0, 256, (n, *input_shape), dtype=np.uint8)
    return x, rng.integers(0, 10, n)


def benchmark_pipeline(batch_size=128, images=45000, input_shape=(32, 32, 3), max_batches=200):
    """Images per second that `keras_attn.data.ArrayBatches` delivers, alone.

    Random uint8 images (as many as CIFAR-10's training split by default) are
    batched with ``shuffle=True`` the way the protocol does, in the calling
    thread. With its default single worker, ``model.fit`` reads a ``PyDataset``
    in step with training, so the time per batch measured here is added to every
    training step: it must be small next to the step time (at least 10x the
    model's throughput).

    Args:
        batch_size: int, default 128.
        images: int, default 45,000; images held in memory.
        input_shape: image shape, default ``(32, 32, 3)``.
        max_batches: int, default 200; batches timed (at most one epoch).

    Returns:
        dict with ``images_per_s``, ``batch_ms`` (median per batch), the
        settings, and ``source`` (the class used).

    Example:
    >>> benchmark_pipeline(batch_size=8, images=64, max_batches=4)["images_per_s"] > 0
    True
    """
    from keras_attn.data import ArrayBatches

    check_positive_int("batch_size", batch_size)
    check_positive_int("images", images)
    check_positive_int("max_batches", max_batches)
    x, y = _random_images(0, images, input_shape)
    batches = ArrayBatches(x, y, batch_size, shuffle=True, seed=0)
    batches.set_epoch(1)
    n = min(len(batches), max_batches)
    batches[0]  # first touch of the arrays
    times, count = [], 0
    start = time.perf_counter()
    for i in range(n):
        t = time.perf_counter()
        xb, _ = batches[i]
        times.append(time.perf_counter() - t)
        count += len(xb)
    total = time.perf_counter() - start
    return {
        "source": "keras_attn.data.ArrayBatches (shuffle=True, uint8 -> float32)",
        "batch_size": batch_size,
        "images_in_memory": images,
        "batches_timed": n,
        "images_per_s": count / total,
        "batch_ms": 1000 * statistics.median(times),
    }


def time_fit(model, batch_size, steps, input_shape):
    """Images/s of one ``model.fit`` epoch of ``steps`` batches on `ArrayBatches`.

    A two-batch ``fit`` first warms the model up (untimed). Random images and
    labels in 0..9.

    Args:
        model: a compiled model taking images of ``input_shape``.
        batch_size: int, images per batch.
        steps: int, batches timed.
        input_shape: image shape, e.g. ``(32, 32, 3)``.

    Returns:
        dict with ``steps``, ``seconds``, ``cpu_seconds_per_step``, ``images_per_s``.

    Example:
    >>> import keras
    >>> model = keras.Sequential([keras.Input((4, 4, 3)), keras.layers.Flatten(),
    ...                           keras.layers.Dense(10, activation="softmax")])
    >>> model.compile("sgd", "sparse_categorical_crossentropy")
    >>> time_fit(model, batch_size=2, steps=2, input_shape=(4, 4, 3))["images_per_s"] > 0
    True
    """
    from keras_attn.data import ArrayBatches

    check_positive_int("batch_size", batch_size)
    check_positive_int("steps", steps)
    n = batch_size * steps
    x, y = _random_images(1, n, input_shape)
    warm = ArrayBatches(x[: 2 * batch_size], y[: 2 * batch_size], batch_size, shuffle=True)
    model.fit(warm, epochs=1, shuffle=False, verbose=0)
    batches = ArrayBatches(x, y, batch_size, shuffle=True, seed=0)
    start, cpu_start = time.perf_counter(), time.process_time()
    model.fit(batches, epochs=1, shuffle=False, verbose=0)
    seconds, cpu = time.perf_counter() - start, time.process_time() - cpu_start
    return {
        "steps": steps,
        "seconds": seconds,
        "cpu_seconds_per_step": cpu / steps,
        "images_per_s": n / seconds,
    }
