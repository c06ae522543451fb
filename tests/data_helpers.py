"""Small data sets for the data / protocol / report tests (synthetic and real).

Imported by tests/test_data.py, tests/test_protocol.py and tests/test_report.py.
"""

from __future__ import annotations

import shutil
from pathlib import Path

import numpy as np
from PIL import Image

REPO = Path(__file__).resolve().parents[1]
#: Where the package lives in a checkout (what a fresh interpreter needs on its path).
SRC = REPO / "src"
#: Record fields that differ between two runs of the same computation.
TIMING_KEYS = frozenset(
    {
        "epoch_seconds",
        "epoch_cpu_seconds",
        "test_seconds",
        "wall_time_s",
        "started_at",
        "finished_at",
    }
)
CIFAR10_CLASSES = [
    "airplane",
    "automobile",
    "bird",
    "cat",
    "deer",
    "dog",
    "frog",
    "horse",
    "ship",
    "truck",
]


def synthetic_arrays(n_train=80, n_test=16, size=32, num_classes=10, seed=0):
    """Random uint8 images whose label is visible in the mean brightness (learnable)."""
    rng = np.random.default_rng(seed)

    def make(n):
        y = rng.integers(0, num_classes, n)
        base = (y * (200 // max(num_classes - 1, 1)))[:, None, None, None]
        x = np.clip(base + rng.integers(0, 56, (n, size, size, 3)), 0, 255).astype(np.uint8)
        return x, y

    x_tr, y_tr = make(n_train)
    x_te, y_te = make(n_test)
    return x_tr, y_tr, x_te, y_te


def write_npz(path, **kwargs):
    """Write a synthetic data set as .npz (see `synthetic_arrays`) and return its path."""
    from keras_attn.data import save_npz

    save_npz(path, *synthetic_arrays(**kwargs))
    return str(path)


def write_image_folder(root, classes=("cat", "dog", "frog"), n_train=4, n_test=2, size=8):
    """A PNG image folder; returns {(split, class, index): pixel array} for checking."""
    rng = np.random.default_rng(0)
    pixels = {}
    for split, n in (("train", n_train), ("test", n_test)):
        for cls in classes:
            d = Path(root) / split / cls
            d.mkdir(parents=True, exist_ok=True)
            for i in range(n):
                arr = rng.integers(0, 256, (size, size, 3), dtype=np.uint8)
                Image.fromarray(arr).save(d / f"{i:03d}.png")
                pixels[(split, cls, i)] = arr
    return pixels


def copy_cifar_subset(cifar_folder, dest, n_train=12, n_test=6):
    """Copy the first n_train / n_test real JPEGs per class of ``cifar_folder`` to ``dest``.

    ``cifar_folder`` is conftest's fixture (the shared copy unpacked; it skips
    the test where the copy is absent).
    """
    dest = Path(dest)
    for split, n in (("train", n_train), ("test", n_test)):
        for cls_dir in sorted((Path(cifar_folder) / split).iterdir()):
            out = dest / split / cls_dir.name
            out.mkdir(parents=True, exist_ok=True)
            files = sorted(cls_dir.glob("*.jpg"))[:n]
            assert len(files) == n, f"{cls_dir} has {len(files)} JPEGs, {n} asked for"
            for f in files:
                shutil.copyfile(f, out / f.name)
    return dest
