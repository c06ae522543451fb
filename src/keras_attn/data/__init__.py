"""Data sources for the study: uint8 images in memory and a deterministic split.

Three sources share one interface, `load_dataset`:

- ``"tfds:cifar10"`` (the default): CIFAR-10 through tensorflow-datasets. No
  surprise downloads: the data must already be in the tfds data folder unless
  ``download=True`` is passed.
- an image-folder tree ``ROOT/train/<class>/*`` and ``ROOT/test/<class>/*``
  (decoded with Pillow; classes are the sorted folder names), or a ``.tar.gz`` /
  ``.tgz`` / ``.tar`` of one, unpacked once into the cache (``~/.cache/keras_attn``
  or ``$KERAS_ATTN_CACHE``), keyed by the archive's contents.
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

The modules, each importable on its own (their entry points are also here; constants
such as ``folders.IMAGE_EXTENSIONS`` stay in their module):

- `dataset`: `Dataset`, `split_train_val`, `fingerprint_arrays`.
- `settings`: `DataSettings` and `load_dataset`, which picks the source.
- `tfds`: `load_tfds` and its offline check before a download.
- `folders`: `load_image_folder` (listing, decoding on a thread pool).
- `folder_cache`: the decoded ``.npz`` copy of an image folder.
- `npz`: `load_npz`, `save_npz`.
- `archives`: `extract_archive` for ``.tar`` / ``.tar.gz`` image folders.
- `batches`: `ArrayBatches`, the float32 batches ``model.fit`` reads.

Example:
    >>> import tempfile
    >>> import numpy as np
    >>> path = tempfile.mkdtemp() + "/tiny.npz"
    >>> x = np.zeros((12, 8, 8, 3), "uint8")
    >>> save_npz(path, x, np.arange(12) % 3, x[:4], np.arange(4) % 3)
    >>> ds = load_dataset(path, val_size=2)
    >>> len(ds.y_train), len(ds.y_val), len(ds.y_test)
    (10, 2, 4)
"""

from keras_attn.data.archives import extract_archive
from keras_attn.data.dataset import Dataset, fingerprint_arrays, split_train_val
from keras_attn.data.folders import load_image_folder
from keras_attn.data.npz import load_npz, save_npz
from keras_attn.data.sources import DataSettings, load_dataset
from keras_attn.data.tfds import load_tfds

__all__ = [
    "ArrayBatches",
    "DataSettings",
    "Dataset",
    "extract_archive",
    "fingerprint_arrays",
    "load_dataset",
    "load_image_folder",
    "load_npz",
    "load_tfds",
    "save_npz",
    "split_train_val",
]


def __getattr__(name):
    """`ArrayBatches` loads Keras: imported on first use, so the data settings load none."""
    if name == "ArrayBatches":
        from keras_attn.data.batches import ArrayBatches

        return ArrayBatches
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
