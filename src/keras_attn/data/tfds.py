"""The ``"tfds:NAME"`` source: `load_tfds`, with no surprise downloads and a fast offline failure.

The data must already be in the tensorflow-datasets data folder unless
``download=True``; a download first checks that one of `DOWNLOAD_HOSTS` answers, and a
failed one leaves nothing behind in the data folder.
"""

from __future__ import annotations

import contextlib
import logging
from pathlib import Path

import numpy as np

from keras_attn.data.dataset import _SPLITS

__all__ = ["DOWNLOAD_HOSTS", "load_tfds"]


def load_tfds(name="cifar10", *, data_dir=None, download=False):
    """Train and test arrays of a tensorflow-datasets image classification set.

    Tries ``download=False`` first and fails at once with instructions when the
    data is not prepared (tfds would otherwise retry a download for minutes).

    Args:
        name: tfds name, optionally with a version (``"cifar10:3.0.2"``).
        data_dir: tfds data folder, ``None`` for tfds' default.
        download: let tfds download and prepare the data if it is missing.

    Returns:
        ``((x_train, y_train, x_test, y_test), class_names, info)``; ``info`` is
        the JSON-able source description.

    Example (``tfds.testing.mock_data`` stands in for the real data here):
        >>> import tensorflow_datasets as tfds
        >>> with tfds.testing.mock_data(num_examples=12):
        ...     (x_tr, y_tr, x_te, y_te), names, info = load_tfds("cifar10")
        >>> x_tr.shape, x_tr.dtype, info["kind"]
        ((12, 32, 32, 3), dtype('uint8'), 'tfds')
    """
    if not isinstance(name, str) or not name:
        raise ValueError(f"tfds dataset name must be a non-empty string, got {name!r}.")
    try:
        import tensorflow_datasets as tfds
    except ImportError as e:  # pragma: no cover - depends on the environment
        raise ImportError(
            "The 'tfds:' data source needs tensorflow-datasets (pip install "
            "tensorflow-datasets); or pass an image folder or .npz file instead."
        ) from e
    data_dir_text = data_dir or "~/tensorflow_datasets (tfds default)"

    def load(download):
        return tfds.load(
            name,
            split=list(_SPLITS),
            data_dir=data_dir,
            download=download,
            as_supervised=True,
            with_info=True,
        )

    try:
        with _no_missing_copy_warning():
            splits, info = load(download=False)  # a prepared copy: no network needed
    except tfds.core.registered.DatasetNotFoundError as e:
        raise ValueError(f"Unknown tensorflow-datasets name {name!r}.") from e
    except AssertionError as e:
        if "could not find data" not in str(e):
            raise
        if not download:
            raise FileNotFoundError(
                f"tensorflow-datasets has no prepared copy of {name!r} in {data_dir_text}. "
                "Download it once (needs a network): add --download; or use a local copy: "
                "--data-dir with an image folder (train/<class>/*, test/<class>/*), a "
                ".tar.gz of one, or an .npz file."
            ) from None
        splits, info = _download_tfds(tfds, name, data_dir, load)
    arrays = []
    for split_name, ds in zip(_SPLITS, splits):
        xs, ys = [], []
        for x, y in tfds.as_numpy(ds.batch(1024)):
            xs.append(x)
            ys.append(y)
        if not xs:
            raise ValueError(f"tfds dataset {name!r} split {split_name!r} is empty.")
        x = np.concatenate(xs)
        if x.dtype != np.uint8:
            raise ValueError(f"tfds dataset {name!r} has {x.dtype} images; uint8 is expected.")
        arrays += [x, np.concatenate(ys).astype(np.int64)]
    label = info.features[info.supervised_keys[1]]
    class_names = list(getattr(label, "names", None) or [str(i) for i in range(label.num_classes)])
    source = {
        "kind": "tfds",
        "name": info.name,
        "location": f"tfds:{info.name}",
        "version": str(info.version),
        "data_dir": str(data_dir) if data_dir else None,
    }
    return tuple(arrays), class_names, source


#: Hosts a tensorflow-datasets download of these data sets needs (tfds' mirror first).
DOWNLOAD_HOSTS = {"cifar10": ("storage.googleapis.com", "www.cs.toronto.edu")}
_PROBE_SECONDS = 5.0


def _reachable(host, port=443):
    import socket

    try:
        socket.create_connection((host, port), timeout=_PROBE_SECONDS).close()
        return True
    except OSError:
        return False


def _download_tfds(tfds, name, data_dir, load):
    """Download and prepare ``name`` with tfds, failing within seconds when offline.

    tfds itself retries an unreachable download for minutes, then leaves an empty
    data set folder behind (every later tfds call warns about it): first check
    that a download host answers, and remove whatever a failed attempt created.
    """
    base = name.split(":")[0].split("/")[0]
    hosts = DOWNLOAD_HOSTS.get(base, ("storage.googleapis.com",))
    if not any(_reachable(h) for h in hosts):
        raise ConnectionError(
            f"Cannot download {base!r}: no network ({', '.join(hosts)} did not answer within "
            f"{_PROBE_SECONDS:.0f} s). Use a local copy instead: --data-dir with an image "
            "folder (train/<class>/*, test/<class>/*), a .tar.gz of one, or an .npz file."
        )
    top = Path(data_dir or "~/tensorflow_datasets").expanduser()
    before = _contents(top, (base, "downloads"))
    try:
        return load(download=True)
    except Exception as e:
        _remove_new(top, before)
        raise ConnectionError(
            f"Downloading {base!r} with tensorflow-datasets failed: {type(e).__name__}: "
            f"{str(e).splitlines()[0] if str(e) else ''}. Nothing was kept in {top}. "
            "Try again, or use a local copy with --data-dir."
        ) from None


def _contents(top, folders):
    """What exists of ``top`` and of its sub-folders ``folders``: {folder: entries or None}."""

    def entries(path):
        return set(path.iterdir()) if path.is_dir() else None

    return {top: entries(top), **{top / name: entries(top / name) for name in folders}}


def _remove_new(top, before):
    """Remove what a failed download added: the folders of `_contents` it made, and the new
    entries of the data set's and the downloads' folders; everything there before stays."""
    import shutil

    for folder in sorted(before, key=lambda p: -len(p.parts)):  # sub-folders first
        old = before[folder]
        if not folder.is_dir() or (folder == top and old is not None):
            continue  # other data sets in an existing data folder are not this call's
        if old is None:
            shutil.rmtree(folder, ignore_errors=True)
            continue
        for entry in set(folder.iterdir()) - old:
            if entry.is_dir() and not entry.is_symlink():
                shutil.rmtree(entry, ignore_errors=True)
            else:
                entry.unlink(missing_ok=True)


class _MissingCopyFilter:
    """Drops tfds' warning about a data set folder that is not there (yet)."""

    def filter(self, record):
        return not str(record.msg).startswith("Variant folder")


@contextlib.contextmanager
def _no_missing_copy_warning():
    """tfds warns ``Variant folder ... has no dataset_info.json`` while it looks for a copy
    that does not exist; the error raised next says what is missing."""
    logger = logging.getLogger("absl")
    quiet = _MissingCopyFilter()
    logger.addFilter(quiet)
    try:
        yield
    finally:
        logger.removeFilter(quiet)
