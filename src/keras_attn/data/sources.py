"""Which data, and loading it: `DataSettings` and `load_dataset`, which picks the source.

``load_dataset(source, val_size=..., split_seed=...)`` reads ``"tfds:NAME"``
(`keras_attn.data.tfds`), an image folder or a ``.tar.gz`` of one
(`keras_attn.data.folders`, `keras_attn.data.archives`, cached by
`keras_attn.data.folder_cache`) or an ``.npz`` file (`keras_attn.data.npz`), and
splits the training images (`keras_attn.data.dataset`). `DataSettings` holds those
arguments for the protocol, the tuner and the command-line flags.

Example:
    >>> DataSettings(data="tfds:mnist").flags()
    ['--dataset', 'mnist']
"""

from __future__ import annotations

import dataclasses
import hashlib
import os
from pathlib import Path

from keras_attn._fields import check_fields, setting
from keras_attn.data.archives import (
    ARCHIVE_EXTENSIONS,
    _archive_folder,
    _image_root,
    extract_archive,
)
from keras_attn.data.dataset import Dataset, split_train_val
from keras_attn.data.folder_cache import _load_folder_cached
from keras_attn.data.npz import load_npz
from keras_attn.data.tfds import load_tfds

__all__ = ["DataSettings", "load_dataset"]

#: The local sources, as the errors name them.
_LOCAL = (
    "an image folder with train/<class>/* and test/<class>/*, a .tar.gz (.tgz, .tar) of one, "
    "or an .npz file"
)


@dataclasses.dataclass
class DataSettings:
    """Which data, and which part of it: what the protocol, the tuner and the flags share.

    Each field is declared once with its help and flag (`keras_attn._fields.setting`):
    ``keras-attn protocol --help`` and docs/protocol.md's table are made from it.

    Example:
    >>> s = DataSettings(data="/data/cifar10", train_limit=2000)
    >>> s.flags()
    ['--data-dir', '/data/cifar10', '--train-limit', '2000']
    """

    data: str = setting(
        "tfds:cifar10",
        "'tfds:NAME', an image folder (train/<class>/*, test/<class>/*), a .tar.gz of one, "
        "or an .npz file (flags --dataset NAME and --data-dir PATH)",
        flag=False,
        comparable="as the data's fingerprint",
    )
    val_size: int = setting(5000, "training images held out for validation", low=1,
                            comparable=True)  # fmt: skip
    split_seed: int = setting(0, "seed of the train/validation split", low=0, comparable=True)
    train_limit: int | None = setting(None, "use only this many training images", low=1,
                                      comparable=True)  # fmt: skip
    val_limit: int | None = setting(None, "use only this many validation images", low=1,
                                    comparable=True)  # fmt: skip
    test_limit: int | None = setting(None, "use only this many test images", low=1,
                                     comparable=True)  # fmt: skip
    tfds_data_dir: str | None = setting(None, "tensorflow-datasets' data folder (default: "
                                        "tfds' own)", flag="--tfds-dir")  # fmt: skip
    download: bool = setting(False, "let tensorflow-datasets download missing data (never "
                             "by default)")  # fmt: skip
    cache_dir: str | None = setting(None, "cache decoded image folders as .npz here")

    def __post_init__(self):
        check_fields(self)

    def load(self) -> Dataset:
        """Load, split and cut the data these settings describe (see `load_dataset`).

        Example:
        >>> import tempfile, numpy as np
        >>> from keras_attn.data import save_npz
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
        """The command-line flags (`keras_attn.cli.arguments.add_data_arguments`) of these settings.

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
        for field in dataclasses.fields(DataSettings):
            value, flags = getattr(self, field.name), field.metadata.get("flag")
            if field.name in ("data", "download") or value == getattr(default, field.name):
                continue
            out += [flags or "--" + field.name.replace("_", "-"), str(value)]
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
            ``~/.cache/keras_attn``, keyed by its contents), or the path of an ``.npz``
            file (see `load_npz`).
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
        >>> import numpy as np
        >>> from keras_attn.data import save_npz
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
                f"Data source {source!r} does not exist. Expected 'tfds:NAME', {_LOCAL}."
            )
        if path.is_file() and path.name.lower().endswith(ARCHIVE_EXTENSIONS):
            folder, digest = _archive_folder(path, cache_dir)
            folder = extract_archive(path, folder, digest=digest)
            (x_tr, y_tr, x_te, y_te), class_names, info = _load_folder_cached(
                _image_root(folder), image_size=image_size, cache_dir=cache_dir
            )
            info = {**info, "name": path.name, "archive": str(path.resolve())}
        elif path.is_dir():
            (x_tr, y_tr, x_te, y_te), class_names, info = _load_folder_cached(
                path, image_size=image_size, cache_dir=cache_dir
            )
        elif path.suffix.lower() == ".npz":
            (x_tr, y_tr, x_te, y_te), class_names = load_npz(path)
            info = {"kind": "npz", "name": path.name, "location": str(path.resolve())}
        else:
            raise ValueError(
                f"Data source {source!r} is neither an .npz file nor an archive "
                f"({', '.join(ARCHIVE_EXTENSIONS)}). Expected 'tfds:NAME', {_LOCAL}."
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
