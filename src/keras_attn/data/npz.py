"""The ``.npz`` source: `load_npz` reads train and test arrays, `save_npz` writes them.

The file holds ``x_train``, ``y_train``, ``x_test``, ``y_test`` and optionally
``class_names``. The same format holds the decode cache of an image folder
(`keras_attn.data.folder_cache`).

Example:
    >>> import tempfile
    >>> path = tempfile.mkdtemp() + "/tiny.npz"
    >>> x = np.zeros((2, 4, 4, 3), "uint8")
    >>> save_npz(path, x, [0, 1], x, [1, 0])
    >>> load_npz(path)[1]
    ['0', '1']
"""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np

from keras_attn.data.dataset import _SPLITS

__all__ = ["load_npz", "save_npz"]


def load_npz(path):
    """Train and test arrays from an ``.npz`` file.

    The file holds ``x_train``, ``y_train``, ``x_test``, ``y_test`` (uint8 images
    ``(n, h, w, c)`` or ``(n, h, w)``; integer labels ``(n,)`` or ``(n, 1)``, as
    `keras.datasets.cifar10.load_data` gives them) and optionally
    ``class_names``. Write one with `save_npz`.

    Args:
        path: the ``.npz`` file.

    Returns:
        ``((x_train, y_train, x_test, y_test), class_names)``.

    Example:
        >>> import tempfile
        >>> path = tempfile.mkdtemp() + "/tiny.npz"
        >>> x = np.zeros((4, 8, 8, 3), "uint8")
        >>> save_npz(path, x, [[0], [1], [0], [1]], x[:2], [0, 1], class_names=["a", "b"])
        >>> (x_tr, y_tr, x_te, y_te), names = load_npz(path)
        >>> x_tr.shape, y_tr.tolist(), names
        ((4, 8, 8, 3), [0, 1, 0, 1], ['a', 'b'])
    """
    path = Path(path).expanduser()
    if not path.exists():
        raise FileNotFoundError(f".npz file {str(path)!r} does not exist.")
    try:
        z = np.load(path, allow_pickle=False)
    except Exception as e:
        raise ValueError(f"Cannot read .npz file {path}: {type(e).__name__}: {e}") from e
    with z:
        missing = [k for k in ("x_train", "y_train", "x_test", "y_test") if k not in z.files]
        if missing:
            raise ValueError(
                f".npz file {path} lacks {missing}; it must hold x_train, y_train, x_test, "
                f"y_test (and optionally class_names). It holds {sorted(z.files)}."
            )
        arrays = []
        for part in _SPLITS:
            x, y = z[f"x_{part}"], z[f"y_{part}"]
            if x.ndim == 3:
                x = x[..., None]
            if x.ndim != 4 or x.dtype != np.uint8:
                raise ValueError(
                    f".npz file {path}: x_{part} must be uint8 images of shape (n, h, w, c) "
                    f"or (n, h, w), got {x.dtype} {x.shape}."
                )
            y = y.reshape(-1) if y.ndim == 2 and y.shape[1] == 1 else y
            if y.ndim != 1 or y.shape[0] != x.shape[0] or not np.issubdtype(y.dtype, np.integer):
                raise ValueError(
                    f".npz file {path}: y_{part} must be {x.shape[0]} integer labels, "
                    f"got {y.dtype} {y.shape}."
                )
            arrays += [x, y.astype(np.int64)]
        if arrays[0].shape[1:] != arrays[2].shape[1:]:
            raise ValueError(
                f".npz file {path}: train images are {arrays[0].shape[1:]} but test images "
                f"are {arrays[2].shape[1:]}."
            )
        n_labels = int(max(arrays[1].max(initial=0), arrays[3].max(initial=0))) + 1
        if "class_names" in z.files:
            class_names = [str(c) for c in z["class_names"].tolist()]
        else:
            class_names = [str(i) for i in range(n_labels)]
        if min(arrays[1].min(initial=0), arrays[3].min(initial=0)) < 0 or n_labels > len(
            class_names
        ):
            raise ValueError(
                f".npz file {path}: labels must lie in 0..{len(class_names) - 1} "
                f"({len(class_names)} class names)."
            )
    return tuple(arrays), class_names


def save_npz(path, x_train, y_train, x_test, y_test, *, class_names=None, **extra):
    """Write train and test arrays to an ``.npz`` file that `load_npz` reads.

    The file is written under a temporary name and renamed, so a reader never
    sees half a file.

    Args:
        path: the ``.npz`` file to write (parent folders are created).
        x_train, y_train, x_test, y_test: the arrays.
        class_names: optional list of class names.
        **extra: further arrays or scalars to store.

    Example (``keras.datasets.cifar10.load_data()`` gives arrays in this form):
        >>> import tempfile
        >>> x = np.zeros((4, 8, 8, 3), "uint8")
        >>> save_npz(tempfile.mkdtemp() + "/cifar-like.npz", x, [0, 1, 0, 1], x[:2], [0, 1])
    """
    path = Path(path).expanduser()
    path.parent.mkdir(parents=True, exist_ok=True)
    arrays = dict(x_train=x_train, y_train=y_train, x_test=x_test, y_test=y_test, **extra)
    if class_names is not None:
        arrays["class_names"] = np.asarray([str(c) for c in class_names])
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    with open(tmp, "wb") as f:
        np.savez(f, **arrays)
    os.replace(tmp, path)
