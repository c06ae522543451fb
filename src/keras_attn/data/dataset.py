"""The data container: `Dataset` (train / val / test arrays), its split and its fingerprint.

`load_dataset` gives a `Dataset`; `split_train_val` is the seeded train / validation split
it applies, and `fingerprint_arrays` the content hash `Dataset.fingerprint` (and the tuner)
record.

Example:
    >>> train_idx, val_idx = split_train_val(10, val_size=2, seed=0)
    >>> len(train_idx), len(val_idx)
    (8, 2)
"""

from __future__ import annotations

import dataclasses
import hashlib

import numpy as np

__all__ = ["Dataset", "fingerprint_arrays", "split_train_val"]

#: The parts every source delivers, in this order (tfds splits, folder names, npz keys).
_SPLITS = ("train", "test")


@dataclasses.dataclass(eq=False)
class Dataset:
    """Images (uint8, NHWC) and integer labels, split into train / val / test.

    Create one with `load_dataset`. ``source``, ``split`` and ``subset`` say where
    the arrays came from; `describe` turns them into the JSON-able dict that the
    protocol records with each result.

    Args:
        x_train, x_val, x_test: uint8 arrays of shape ``(n, height, width, channels)``.
        y_train, y_val, y_test: int64 label arrays of shape ``(n,)``.
        class_names: one name per label index.
        source: where the data came from (``kind``, ``name``, ``location``, ...);
            reports name the data by ``name`` and fingerprint, never by ``location``.
        split: how validation was taken from the training images.
        subset: the sizes kept by `take`, or ``None`` for the full split.

    Example:
        >>> import tempfile
        >>> from keras_attn.data import load_dataset, save_npz
        >>> path = tempfile.mkdtemp() + "/tiny.npz"
        >>> x = np.zeros((20, 8, 8, 3), "uint8")
        >>> save_npz(path, x, np.arange(20) % 4, x[:6], np.arange(6) % 4)
        >>> ds = load_dataset(path, val_size=5)
        >>> ds.x_train.shape, ds.x_val.shape, ds.x_test.shape, ds.num_classes
        ((15, 8, 8, 3), (5, 8, 8, 3), (6, 8, 8, 3), 4)
    """

    x_train: np.ndarray
    y_train: np.ndarray
    x_val: np.ndarray
    y_val: np.ndarray
    x_test: np.ndarray
    y_test: np.ndarray
    class_names: tuple
    source: dict
    split: dict
    subset: dict | None = None

    @property
    def input_shape(self) -> tuple:
        """Shape of one image, ``(height, width, channels)``."""
        return tuple(int(d) for d in self.x_train.shape[1:])

    @property
    def num_classes(self) -> int:
        """Number of classes (``len(class_names)``)."""
        return len(self.class_names)

    def fingerprint(self) -> str:
        """SHA-256 of the six arrays as used (images, labels, split and subset).

        Two datasets with the same fingerprint hold the same images and labels in
        the same train / val / test roles, whatever path they were read from.

        Example:
            >>> a = Dataset(*[np.zeros((2, 1), "uint8")] * 6, ("a",), {}, {})
            >>> b = Dataset(*[np.zeros((2, 1), "uint8")] * 6, ("a",), {}, {})
            >>> a.fingerprint() == b.fingerprint(), len(a.fingerprint())
            (True, 64)
        """
        if getattr(self, "_fingerprint", None) is None:
            names = ("x_train", "y_train", "x_val", "y_val", "x_test", "y_test")
            self._fingerprint = fingerprint_arrays(
                *(getattr(self, name) for name in names),
                names=names,
                extra="\n".join(self.class_names).encode(),
            )
        return self._fingerprint

    def describe(self) -> dict:
        """JSON-able description: source, counts, split, subset and fingerprint.

        Example:
            >>> ds = Dataset(*[np.zeros((2, 4, 4, 3), "uint8"), np.zeros(2, "int64")] * 3,
            ...              ("a", "b"), {"kind": "npz"}, {"val_size": 2})
            >>> ds.describe()["counts"]
            {'train': 2, 'val': 2, 'test': 2}
        """
        return {
            "source": dict(self.source),
            "class_names": list(self.class_names),
            "image_shape": list(self.input_shape),
            "counts": {
                "train": int(len(self.y_train)),
                "val": int(len(self.y_val)),
                "test": int(len(self.y_test)),
            },
            "split": dict(self.split),
            "subset": dict(self.subset) if self.subset else None,
            "fingerprint": self.fingerprint(),
        }

    def take(self, train=None, val=None, test=None, *, seed=0) -> Dataset:
        """A smaller dataset: the first ``train`` / ``val`` images and ``test`` random ones.

        Train and validation images are already in a seeded random order after
        the split, so their first ``n`` are a random sample; the test images keep
        the source order (often sorted by class), so ``test`` of them are drawn
        with ``seed``. ``None`` keeps a part whole.

        Args:
            train: number of training images to keep, or ``None`` for all.
            val: number of validation images to keep, or ``None`` for all.
            test: number of test images to keep, or ``None`` for all.
            seed: seed of the test sample.

        Example:
            >>> ds = Dataset(*[np.zeros((9, 4, 4, 3), "uint8"), np.arange(9) % 3] * 3,
            ...              ("a", "b", "c"), {"kind": "npz"}, {"val_size": 9})
            >>> small = ds.take(train=6, val=3, test=3)
            >>> small.describe()["counts"]
            {'train': 6, 'val': 3, 'test': 3}
        """
        sizes = {"train": train, "val": val, "test": test}
        arrays = {}
        for part, n in sizes.items():
            x, y = getattr(self, f"x_{part}"), getattr(self, f"y_{part}")
            if n is None:
                arrays[part] = (x, y)
                continue
            if isinstance(n, bool) or not isinstance(n, (int, np.integer)) or n < 1:
                raise ValueError(f"`{part}` must be a positive integer or None, got {n!r}.")
            if n > len(y):
                raise ValueError(f"`{part}`={n} is more than the {len(y)} {part} images available.")
            if part == "test":
                idx = np.sort(np.random.default_rng(seed).permutation(len(y))[:n])
            else:
                idx = np.arange(n)
            arrays[part] = (x[idx], y[idx])
        subset = {"train": train, "val": val, "test": test, "test_seed": int(seed)}
        return Dataset(
            *arrays["train"],
            *arrays["val"],
            *arrays["test"],
            class_names=self.class_names,
            source=self.source,
            split=self.split,
            subset=subset,
        )


def fingerprint_arrays(*arrays, names=None, extra=b""):
    """SHA-256 (hex) of arrays' dtypes, shapes and bytes: equal arrays, equal fingerprint.

    Args:
        *arrays: NumPy arrays.
        names: optional names, one per array, hashed with each (`Dataset.fingerprint`
            names its six arrays; the tuner's data fingerprint does not).
        extra: bytes hashed after the arrays (e.g. class names).

    Example:
    >>> a = np.arange(6, dtype="uint8")
    >>> fingerprint_arrays(a) == fingerprint_arrays(a.copy()) != fingerprint_arrays(a[:5])
    True
    """
    h = hashlib.sha256()
    for i, a in enumerate(arrays):
        a = np.ascontiguousarray(a)
        if names is None:
            h.update(f"{a.dtype.str}:{a.shape};".encode())
        else:
            h.update(f"{names[i]}:{a.dtype.str}:{a.shape}".encode())
        h.update(memoryview(a).cast("B"))
    h.update(extra)
    return h.hexdigest()


def split_train_val(n, *, val_size=5000, seed=0):
    """Indices of a seeded random train / validation split of ``n`` images.

    The permutation is ``numpy.random.default_rng(seed).permutation(n)``: the
    first ``val_size`` indices are validation, the rest training. Both come back
    in permuted (random) order, so their first ``k`` are random samples.

    Args:
        n: number of training images.
        val_size: number held out for validation, ``0 <= val_size < n``.
        seed: seed of the permutation.

    Returns:
        ``(train_indices, val_indices)``, int64 arrays.

    Example:
        >>> tr, va = split_train_val(50000, val_size=5000, seed=0)
        >>> len(tr), len(va)
        (45000, 5000)
    """
    if isinstance(val_size, bool) or not isinstance(val_size, (int, np.integer)) or val_size < 0:
        raise ValueError(f"`val_size` must be an integer >= 0, got {val_size!r}.")
    if val_size >= n:
        raise ValueError(
            f"`val_size`={val_size} leaves no training images: the source has {n} "
            f"training images, so val_size must be below {n}."
        )
    if isinstance(seed, bool) or not isinstance(seed, (int, np.integer)) or seed < 0:
        raise ValueError(f"`split_seed` must be an integer >= 0, got {seed!r}.")
    perm = np.random.default_rng(seed).permutation(n).astype(np.int64)
    return perm[val_size:], perm[:val_size]
