"""What the tuner's tests share: a tiny backbone and space, random data, keras-attn tune."""

import os

import numpy as np

from keras_attn import tuning

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
# A small backbone and space keep trials to seconds on a CPU.
TINY_BASE = {"blocks": [8, 16], "dense_units": 16}
TINY_SPACE = {
    "first_filters": [2, 4],
    "growth": [1.0, 2.0],
    "final_kernel": [2, 3],
    "attention_position": ["pre_activation", "post_norm"],
    "learning_rate": [0.05],
}
# Fewer choices and no ECA: the fastest trials.
FAST_SPACE = {"first_filters": [2, 4], "growth": [1.0], "final_kernel": [2], "eca": [False]}


def random_data(n_train=64, n_val=32, seed=0):
    """Random 32x32x3 uint8 images and labels 0..9: ``x_train, y_train, x_val, y_val``."""
    rng = np.random.default_rng(seed)
    x = rng.integers(0, 256, (n_train + n_val, 32, 32, 3), dtype=np.uint8)
    y = rng.integers(0, 10, n_train + n_val)
    return x[:n_train], y[:n_train], x[n_train:], y[n_train:]


def enumerate_space(space, skip=()):
    """Every combination of active values of a HyperParameters space (conditions respected)."""
    params = [p for p in space if p.name not in skip]

    def rec(i, values):
        if i == len(params):
            yield dict(values)
            return
        p = params[i]
        if not all(c.is_active(values) for c in p.conditions):
            yield from rec(i + 1, values)
            return
        for v in p.values:
            values[p.name] = v
            yield from rec(i + 1, values)
            del values[p.name]

    yield from rec(0, {})


def tiny(space=TINY_SPACE, **kwargs):
    """A HyperModel over `TINY_BASE` and ``space`` (keyword arguments go to the HyperModel)."""
    return tuning.ConvAutoencoderHyperModel(TINY_BASE, space=space, **kwargs)


def tune_script():
    """``keras-attn tune``'s module (its ``main(argv)`` and ``build_parser``)."""
    from keras_attn.cli import tune

    return tune
