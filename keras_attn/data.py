"""Data sources for the study: uint8 images in memory and a deterministic split.

Three sources share one interface, `load_dataset`:

- ``"tfds:cifar10"`` (the default): CIFAR-10 through tensorflow-datasets. No
  surprise downloads: the data must already be in the tfds data folder unless
  ``download=True`` is passed.
- an image-folder tree ``ROOT/train/<class>/*`` and ``ROOT/test/<class>/*``
  (decoded with Pillow; classes are the sorted folder names).
- an ``.npz`` file holding ``x_train``, ``y_train``, ``x_test``, ``y_test`` and
  optionally ``class_names`` (the format `save_npz` writes, and the format of the
  optional cache of an image folder).

The training images are split into train and validation by a seeded random
permutation (`split_train_val`); the split and a content fingerprint of the
arrays are part of `Dataset.describe`, which the protocol stores with every
result. Images stay uint8 NumPy arrays; `ArrayBatches` turns them into float32
batches (raw 0..255 values: keras_attn models rescale internally) through
`keras.utils.PyDataset`, so the same code trains on the TensorFlow, JAX and
PyTorch backends.
"""

from __future__ import annotations

import dataclasses
import hashlib
import io
import os
import tarfile
from pathlib import Path

import keras
import numpy as np

__all__ = [
    "ArrayBatches",
    "DataSettings",
    "Dataset",
    "IMAGE_EXTENSIONS",
    "ARCHIVE_EXTENSIONS",
    "extract_archive",
    "fingerprint_arrays",
    "load_dataset",
    "load_image_folder",
    "load_npz",
    "load_tfds",
    "save_npz",
    "split_train_val",
]

IMAGE_EXTENSIONS = (".jpg", ".jpeg", ".png", ".bmp", ".gif", ".webp", ".tif", ".tiff", ".ppm")
"""File name endings the image-folder loader reads (case-insensitive)."""

_SPLITS = ("train", "test")
_CACHE_FORMAT = 1


# --------------------------------------------------------------------------- dataset


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
        source: where the data came from (``kind``, ``location``, ...).
        split: how validation was taken from the training images.
        subset: the sizes kept by `take`, or ``None`` for the full split.

    Example:
        >>> import tempfile
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


# --------------------------------------------------------------------------- entry point


@dataclasses.dataclass
class DataSettings:
    """Which data, and which part of it: what the protocol, the tuner and the flags share.

    Args:
        data: ``"tfds:NAME"``, an image-folder path or an ``.npz`` path (see
            `load_dataset`).
        val_size: training images held out for validation (study: 5,000).
        split_seed: seed of the train / validation split.
        train_limit, val_limit, test_limit: keep only this many images of each
            part (``None``: all); for quick runs.
        tfds_data_dir: tensorflow-datasets data folder (``None``: tfds' default).
        download: let tensorflow-datasets download missing data (never by default).
        cache_dir: decode cache for image folders (``None``: no cache).

    Example:
    >>> s = DataSettings(data="/data/cifar10", train_limit=2000)
    >>> s.flags()
    ['--data-dir', '/data/cifar10', '--train-limit', '2000']
    """

    data: str = "tfds:cifar10"
    val_size: int = 5000
    split_seed: int = 0
    train_limit: int | None = None
    val_limit: int | None = None
    test_limit: int | None = None
    tfds_data_dir: str | None = None
    download: bool = False
    cache_dir: str | None = None

    def load(self) -> Dataset:
        """Load, split and cut the data these settings describe (see `load_dataset`).

        Example:
        >>> import tempfile, numpy as np
        >>> path = tempfile.mkdtemp() + "/tiny.npz"
        >>> x = np.zeros((12, 8, 8, 3), "uint8"); y = np.arange(12) % 3
        >>> save_npz(path, x, y, x[:4], y[:4])
        >>> ds = DataSettings(data=path, val_size=2, train_limit=6).load()
        >>> len(ds.y_train), len(ds.y_val), len(ds.y_test)
        (6, 2, 4)
        """
        data = load_dataset(
            self.data,
            val_size=self.val_size,
            split_seed=self.split_seed,
            tfds_data_dir=self.tfds_data_dir,
            download=self.download,
            cache_dir=self.cache_dir,
        )
        if self.train_limit or self.val_limit or self.test_limit:
            data = data.take(self.train_limit, self.val_limit, self.test_limit)
        return data

    def flags(self) -> list:
        """The command-line flags (`keras_attn._cli.add_data_arguments`) that give these settings.

        Only settings that differ from the defaults appear, so the flags work for
        every script that takes data flags.

        Example:
        >>> DataSettings(data="tfds:mnist", val_size=1000).flags()
        ['--dataset', 'mnist', '--val-size', '1000']
        """
        out = []
        default = DataSettings()
        if self.data != default.data:
            if self.data.startswith("tfds:"):
                out += ["--dataset", self.data[len("tfds:") :]]
            else:
                out += ["--data-dir", self.data]
        for name, flag in (
            ("val_size", "--val-size"),
            ("split_seed", "--split-seed"),
            ("train_limit", "--train-limit"),
            ("val_limit", "--val-limit"),
            ("test_limit", "--test-limit"),
            ("tfds_data_dir", "--tfds-dir"),
            ("cache_dir", "--cache-dir"),
        ):
            value = getattr(self, name)
            if value != getattr(default, name):
                out += [flag, str(value)]
        if self.download:
            out.append("--download")
        return out


def load_dataset(
    source="tfds:cifar10",
    *,
    val_size=5000,
    split_seed=0,
    tfds_data_dir=None,
    download=False,
    image_size=None,
    cache_dir=None,
) -> Dataset:
    """Load a data set and split its training images into train and validation.

    Args:
        source: ``"tfds:NAME"`` (a tensorflow-datasets name, ``"tfds:cifar10"`` by
            default), the path of an image-folder tree (``train/<class>/*``,
            ``test/<class>/*``), a ``.tar.gz`` / ``.tgz`` / ``.tar`` archive of one
            (unpacked once into ``cache_dir``, or ``$KERAS_ATTN_CACHE``, default
            ``~/.cache/keras_attn``), or the path of an ``.npz`` file (see `load_npz`).
        val_size: number of training images held out for validation (int >= 0;
            5,000 as in the study).
        split_seed: seed of the train / validation permutation.
        tfds_data_dir: tensorflow-datasets data folder (``None``: tfds' default,
            ``~/tensorflow_datasets``). Only for ``tfds:`` sources.
        download: allow tensorflow-datasets to download and prepare the data when
            it is not in ``tfds_data_dir`` (default ``False``: fail fast instead).
        image_size: ``(height, width)`` to resize folder images to; ``None``
            requires all images of a folder to have the same size.
        cache_dir: folder for a decoded ``.npz`` copy of an image folder, keyed by
            the folder's file list, sizes and times; ``None`` disables the cache.

    Returns:
        A `Dataset`.

    Raises:
        FileNotFoundError: a folder or file that does not exist.
        ValueError: anything else wrong with the source, named in the message.

    Example:
        >>> import tempfile
        >>> path = tempfile.mkdtemp() + "/tiny.npz"
        >>> x = np.zeros((20, 8, 8, 3), "uint8")
        >>> save_npz(path, x, np.arange(20) % 4, x[:6], np.arange(6) % 4)
        >>> ds = load_dataset(path, val_size=5, split_seed=0)
        >>> ds.describe()["split"]["val_size"], len(ds.y_train)
        (5, 15)
    """
    if isinstance(source, os.PathLike):
        source = os.fspath(source)
    if not isinstance(source, str) or not source:
        raise ValueError(
            f"`source` must be 'tfds:NAME', an image-folder path or an .npz path, got {source!r}."
        )
    if source.startswith("tfds:"):
        name = source[len("tfds:") :]
        (x_tr, y_tr, x_te, y_te), class_names, info = load_tfds(
            name, data_dir=tfds_data_dir, download=download
        )
    else:
        path = Path(source).expanduser()
        if not path.exists():
            raise FileNotFoundError(
                f"Data source {source!r} does not exist. Expected 'tfds:NAME', an image "
                "folder with train/<class>/* and test/<class>/*, or an .npz file."
            )
        if path.is_file() and path.name.lower().endswith(ARCHIVE_EXTENSIONS):
            folder = extract_archive(path, _archive_folder(path, cache_dir))
            (x_tr, y_tr, x_te, y_te), class_names, info = _load_folder_cached(
                _image_root(folder), image_size=image_size, cache_dir=cache_dir
            )
            info = {**info, "archive": str(path.resolve())}
        elif path.is_dir():
            (x_tr, y_tr, x_te, y_te), class_names, info = _load_folder_cached(
                path, image_size=image_size, cache_dir=cache_dir
            )
        elif path.suffix.lower() == ".npz":
            (x_tr, y_tr, x_te, y_te), class_names = load_npz(path)
            info = {"kind": "npz", "location": str(path.resolve())}
        else:
            raise ValueError(
                f"Data source {source!r} is a file but not an .npz file. Expected "
                "'tfds:NAME', an image folder or an .npz file."
            )
    train_idx, val_idx = split_train_val(len(y_tr), val_size=val_size, seed=split_seed)
    split = {
        "method": "seeded random permutation of the training images",
        "val_size": int(val_size),
        "split_seed": int(split_seed),
        "val_indices_sha256": hashlib.sha256(val_idx.astype("<i8").tobytes()).hexdigest(),
    }
    return Dataset(
        x_tr[train_idx],
        y_tr[train_idx],
        x_tr[val_idx],
        y_tr[val_idx],
        x_te,
        y_te,
        class_names=tuple(class_names),
        source=info,
        split=split,
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


# --------------------------------------------------------------------------- tfds


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
    root = Path(data_dir or "~/tensorflow_datasets").expanduser() / base
    existed = root.exists()
    try:
        return load(download=True)
    except Exception as e:
        if not existed and root.exists():
            import shutil

            shutil.rmtree(root, ignore_errors=True)
        raise ConnectionError(
            f"Downloading {base!r} with tensorflow-datasets failed: {type(e).__name__}: "
            f"{str(e).splitlines()[0] if str(e) else ''}. Nothing was kept in {root.parent}. "
            "Try again, or use a local copy with --data-dir."
        ) from None


# --------------------------------------------------------------------------- image folder


def load_image_folder(root, *, image_size=None):
    """Decode an image-folder tree ``ROOT/{train,test}/<class>/<image>`` into arrays.

    Class names are the sorted sub-folder names of ``train``, which ``test``
    must match; labels index into them. Images are converted to RGB with Pillow.
    Hidden files are skipped, and so are files whose name does not end with one
    of `IMAGE_EXTENSIONS` (their number is reported as ``ignored_files``).

    Args:
        root: the folder holding ``train`` and ``test``.
        image_size: ``(height, width)`` to resize every image to (bilinear);
            ``None`` requires all images to share one size.

    Returns:
        ``((x_train, y_train, x_test, y_test), class_names, info)``.

    Raises:
        FileNotFoundError: ``root``, ``root/train`` or ``root/test`` missing.
        ValueError: no class folders, an empty class folder, different class
            folders in train and test, an unreadable image or an image of another
            size (the message names the file).

    Example:
        >>> import tempfile
        >>> from PIL import Image
        >>> root = Path(tempfile.mkdtemp())
        >>> for part in ("train/cat", "train/dog", "test/cat", "test/dog"):
        ...     (root / part).mkdir(parents=True)
        ...     Image.new("RGB", (8, 8)).save(root / part / "0.png")
        >>> (x_train, y_train, x_test, y_test), names, info = load_image_folder(root)
        >>> x_train.shape, names
        ((2, 8, 8, 3), ['cat', 'dog'])
    """
    root = Path(root).expanduser()
    target = _check_image_size(image_size)
    files, class_names, ignored = _list_image_folder(root)
    paths = [p for split_name in _SPLITS for p in files[split_name][0]]
    images, errors = _decode_images(paths, target)
    if errors:
        shown = "\n  ".join(errors[:_MAX_LISTED])
        more = f"\n  ... and {len(errors) - _MAX_LISTED} more" if len(errors) > _MAX_LISTED else ""
        raise ValueError(
            f"Cannot read {len(errors)} of {len(paths)} images in {root}:\n  {shown}{more}\n"
            "Remove or replace them (or move them out of the class folders) and run again."
        )
    shapes = {}
    for p, img in zip(paths, images):
        shapes.setdefault(img.shape, p)
    if len(shapes) > 1:
        (shape_a, a), (shape_b, b) = list(shapes.items())[:2]
        raise ValueError(
            f"Image {b} is {shape_b[1]}x{shape_b[0]} (width x height) but {a} is "
            f"{shape_a[1]}x{shape_a[0]}: all images must have one size. Pass "
            "image_size=(height, width) to resize them."
        )
    arrays, start = [], 0
    for split_name in _SPLITS:
        split_paths, labels = files[split_name]
        arrays += [
            np.stack(images[start : start + len(split_paths)]),
            np.asarray(labels, dtype=np.int64),
        ]
        start += len(split_paths)
    info = {
        "kind": "folder",
        "location": str(root.resolve()),
        "image_size": list(target) if target is not None else None,
        "ignored_files": ignored,
    }
    return tuple(arrays), class_names, info


def _list_image_folder(root):
    if not root.exists():
        raise FileNotFoundError(f"Image folder {str(root)!r} does not exist.")
    if not root.is_dir():
        raise ValueError(f"Image folder {str(root)!r} is not a folder.")
    class_sets = {}
    for split_name in _SPLITS:
        d = root / split_name
        if not d.is_dir():
            raise FileNotFoundError(
                f"Image folder {str(root)!r} has no {split_name!r} sub-folder. Expected "
                f"{root}/train/<class>/<image> and {root}/test/<class>/<image>."
            )
        classes = sorted(c.name for c in d.iterdir() if c.is_dir() and not c.name.startswith("."))
        if not classes:
            raise ValueError(
                f"{str(d)!r} holds no class folders. Expected {d}/<class>/<image> "
                "(one sub-folder per class)."
            )
        class_sets[split_name] = classes
    if class_sets["train"] != class_sets["test"]:
        only_train = sorted(set(class_sets["train"]) - set(class_sets["test"]))
        only_test = sorted(set(class_sets["test"]) - set(class_sets["train"]))
        raise ValueError(
            f"The class folders of {root}/train and {root}/test differ: only in train: "
            f"{only_train}, only in test: {only_test}. Both must hold the same classes."
        )
    class_names = class_sets["train"]
    files, ignored = {}, 0
    for split_name in _SPLITS:
        paths, labels = [], []
        for label, cls in enumerate(class_names):
            d = root / split_name / cls
            n_before = len(paths)
            for entry in sorted(os.scandir(d), key=lambda e: e.name):
                if entry.name.startswith(".") or not entry.is_file():
                    continue
                if not entry.name.lower().endswith(IMAGE_EXTENSIONS):
                    ignored += 1
                    continue
                paths.append(Path(entry.path))
                labels.append(label)
            if len(paths) == n_before:
                raise ValueError(
                    f"Class folder {str(d)!r} holds no images (readable endings: "
                    f"{', '.join(IMAGE_EXTENSIONS)})."
                )
        files[split_name] = (paths, labels)
    return files, class_names, ignored


def _check_image_size(image_size):
    if image_size is None:
        return None
    try:
        h, w = image_size
    except (TypeError, ValueError):
        h = w = None
    if any(isinstance(v, bool) or not isinstance(v, (int, np.integer)) or v < 1 for v in (h, w)):
        raise ValueError(
            f"`image_size` must be None or (height, width) positive integers, got {image_size!r}."
        )
    return (int(h), int(w))


_MAX_LISTED = 20  # unreadable images named in one error; the rest are counted


def _decode_images(paths, size, chunk=512):
    """Decode ``paths`` on a thread pool (Pillow decodes without the GIL).

    Returns ``(images, errors)``: the arrays in order, and one line per
    unreadable file (all of them, so one run names every bad file).
    """
    from concurrent.futures import ThreadPoolExecutor

    def decode_chunk(chunk_paths):
        out = []
        for p in chunk_paths:
            try:
                out.append((_decode_image(p, size), None))
            except ValueError as e:
                out.append((None, str(e).removeprefix("Cannot read image ")))
        return out

    chunks = [paths[i : i + chunk] for i in range(0, len(paths), chunk)]
    workers = max(
        1,
        min(
            len(chunks),
            16,
            len(os.sched_getaffinity(0))
            if hasattr(os, "sched_getaffinity")
            else os.cpu_count() or 1,
        ),
    )
    with ThreadPoolExecutor(max_workers=workers) as pool:
        results = [r for part in pool.map(decode_chunk, chunks) for r in part]
    return [img for img, _ in results], [err for _, err in results if err is not None]


def _decode_image(path, size):
    from PIL import Image, UnidentifiedImageError

    try:
        with open(path, "rb") as f:
            data = f.read()
        with Image.open(io.BytesIO(data)) as img:
            img = img.convert("RGB")
            if size is not None and img.size != (size[1], size[0]):
                img = img.resize((size[1], size[0]), Image.BILINEAR)
            return np.asarray(img, dtype=np.uint8)
    except (UnidentifiedImageError, OSError, ValueError, SyntaxError) as e:
        raise ValueError(f"Cannot read image {path}: {type(e).__name__}: {e}") from e


def _folder_signature(root, image_size):
    """Cheap identity of a folder's contents: relative paths, sizes and mtimes."""
    h = hashlib.sha256(f"format={_CACHE_FORMAT};image_size={image_size}".encode())
    files, _, _ = _list_image_folder(root)
    for split_name in _SPLITS:
        for p, label in zip(*files[split_name]):
            st = p.stat()
            h.update(f"{p.relative_to(root)}\0{st.st_size}\0{st.st_mtime_ns}\0{label}\n".encode())
    return h.hexdigest()


def _load_folder_cached(root, *, image_size, cache_dir):
    if cache_dir is None:
        return load_image_folder(root, image_size=image_size)
    key = _folder_signature(root, _check_image_size(image_size))
    cache_path = Path(cache_dir).expanduser() / f"folder-{key[:32]}.npz"
    if cache_path.exists():
        try:
            arrays, class_names = load_npz(cache_path)
            with np.load(cache_path, allow_pickle=False) as z:
                info = {
                    "kind": "folder",
                    "location": str(root.resolve()),
                    "image_size": list(image_size) if image_size is not None else None,
                    "ignored_files": int(z["ignored_files"]) if "ignored_files" in z else 0,
                }
            info["cache"] = str(cache_path)
            return arrays, class_names, info
        except (ValueError, OSError):
            pass  # a damaged cache file is rebuilt below
    arrays, class_names, info = load_image_folder(root, image_size=image_size)
    save_npz(cache_path, *arrays, class_names=class_names, ignored_files=info["ignored_files"])
    info = dict(info, cache=str(cache_path))
    return arrays, class_names, info


# --------------------------------------------------------------------------- npz


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


# --------------------------------------------------------------------------- archives


#: Archive endings `load_dataset` unpacks as image folders.
ARCHIVE_EXTENSIONS = (".tar.gz", ".tgz", ".tar")


def _archive_folder(archive, cache_dir):
    root = cache_dir or os.environ.get("KERAS_ATTN_CACHE") or "~/.cache/keras_attn"
    st = archive.stat()
    key = hashlib.sha256(f"{archive.resolve()}:{st.st_size}".encode()).hexdigest()[:12]
    name = archive.name.split(".")[0]
    return Path(root).expanduser() / f"{name}-{key}"


def _image_root(folder):
    """The folder holding ``train`` and ``test``: ``folder`` or its only sub-folder."""
    if (folder / "train").is_dir():
        return folder
    subs = [p for p in folder.iterdir() if p.is_dir() and not p.name.startswith(".")]
    return subs[0] if len(subs) == 1 and (subs[0] / "train").is_dir() else folder


def extract_archive(archive, dest):
    """Unpack a ``.tar``/``.tar.gz`` image-folder archive into ``dest`` once.

    A marker file records the archive's size and modification time; a later
    call with the same archive returns at once. Members that would land outside
    ``dest`` are refused (``tarfile`` ``"data"`` filter).

    Args:
        archive: the archive (for example the offline CIFAR-10 JPEG copy).
        dest: the folder to unpack into (use a temporary or git-ignored one).

    Returns:
        ``dest`` as a `pathlib.Path`.

    Example:
        >>> import tarfile, tempfile
        >>> work = Path(tempfile.mkdtemp())
        >>> (work / "train").mkdir(); _ = (work / "train" / "a.txt").write_text("x")
        >>> with tarfile.open(work / "d.tar.gz", "w:gz") as tar:
        ...     tar.add(work / "train", arcname="train")
        >>> sorted(p.name for p in extract_archive(work / "d.tar.gz", work / "out").iterdir())
        ['.extracted', 'train']
    """
    archive, dest = Path(archive).expanduser(), Path(dest).expanduser()
    if not archive.is_file():
        raise FileNotFoundError(f"Archive {str(archive)!r} does not exist.")
    st = archive.stat()
    stamp = f"{archive.resolve()}\n{st.st_size}\n{st.st_mtime_ns}\n"
    marker = dest / ".extracted"
    if marker.exists() and marker.read_text() == stamp:
        return dest
    dest.mkdir(parents=True, exist_ok=True)
    with tarfile.open(archive) as tar:
        if hasattr(tarfile, "data_filter"):  # Python >= 3.10.12 / 3.11.4
            tar.extractall(dest, filter="data")
        else:  # pragma: no cover - older Pythons: refuse unsafe members ourselves
            root = os.path.realpath(dest)
            for m in tar.getmembers():
                target = os.path.realpath(os.path.join(root, m.name))
                if not (m.isfile() or m.isdir()) or os.path.commonpath([root, target]) != root:
                    raise tarfile.TarError(f"Refusing unsafe archive member {m.name!r}")
            tar.extractall(dest)
    marker.write_text(stamp)
    return dest


# --------------------------------------------------------------------------- batches


class ArrayBatches(keras.utils.PyDataset):
    """Float32 batches of uint8 images for ``model.fit`` / ``predict``, any backend.

    A `keras.utils.PyDataset`: batch ``i`` is taken from the arrays on demand
    (only one batch is ever converted to float32). With ``shuffle=True`` the
    order of epoch ``e`` is ``default_rng([seed, e]).permutation(n)``: a function
    of the seed and the epoch alone, so a resumed run sees the same batches as an
    uninterrupted one. Call `set_epoch` before each epoch.

    Args:
        x: uint8 images ``(n, h, w, c)``; values stay 0..255 (cast to float32).
        y: integer labels ``(n,)``, or ``None`` for inputs only (predict).
        batch_size: images per batch; the last batch may be smaller.
        shuffle: reorder the images every epoch.
        seed: seed of the shuffling.
        **kwargs: passed to `keras.utils.PyDataset` (``workers``, ...).

    Example (``model.fit(batches, shuffle=False)`` trains on them):
        >>> x = np.zeros((10, 4, 4, 3), "uint8"); y = np.arange(10)
        >>> batches = ArrayBatches(x, y, 4, shuffle=True, seed=0)
        >>> batches.set_epoch(0)
        >>> len(batches), batches[0][0].dtype, batches[2][0].shape
        (3, dtype('float32'), (2, 4, 4, 3))
    """

    def __init__(self, x, y=None, batch_size=128, *, shuffle=False, seed=0, **kwargs):
        super().__init__(**kwargs)
        if isinstance(batch_size, bool) or not isinstance(batch_size, (int, np.integer)):
            raise ValueError(f"`batch_size` must be a positive integer, got {batch_size!r}.")
        if batch_size < 1:
            raise ValueError(f"`batch_size` must be a positive integer, got {batch_size!r}.")
        if y is not None and len(x) != len(y):
            raise ValueError(f"x has {len(x)} images but y has {len(y)} labels.")
        if len(x) == 0:
            raise ValueError("ArrayBatches needs at least one image, got an empty array.")
        self.x, self.y = x, y
        self.batch_size = int(batch_size)
        self.shuffle = bool(shuffle)
        self.seed = int(seed)
        self.set_epoch(0)

    def set_epoch(self, epoch):
        """Select the order of epoch ``epoch`` (0-based); no effect without shuffle."""
        self.epoch = int(epoch)
        if self.shuffle:
            self._order = np.random.default_rng([self.seed, self.epoch]).permutation(len(self.x))
        else:
            self._order = None

    def __len__(self):
        return -(-len(self.x) // self.batch_size)

    def __getitem__(self, index):
        if index < 0 or index >= len(self):
            raise IndexError(f"batch index {index} out of range 0..{len(self) - 1}")
        sl = slice(index * self.batch_size, (index + 1) * self.batch_size)
        idx = self._order[sl] if self._order is not None else sl
        x = self.x[idx].astype(np.float32)
        if self.y is None:
            return (x,)
        return x, self.y[idx]
