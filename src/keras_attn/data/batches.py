"""Training batches: `ArrayBatches` turns uint8 arrays into float32 batches on any backend."""

from __future__ import annotations

import keras
import numpy as np

from keras_attn.data.augment import augment, epoch_augmentation

__all__ = ["ArrayBatches", "epoch_order"]


def epoch_order(n, seed, epoch):
    """The order in which `ArrayBatches` with ``shuffle=True`` visits ``n`` images in an epoch.

    ``default_rng([seed, epoch]).permutation(n)``: a function of the seed and the
    epoch alone (the JAX trainer sends the same indices to the device).

    Example:
        >>> epoch_order(5, seed=0, epoch=0).tolist()
        [2, 4, 3, 0, 1]
    """
    return np.random.default_rng([int(seed), int(epoch)]).permutation(int(n))


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
        seed: seed of the shuffling and of the augmentation.
        augmentation: ``(kind, padding, pad_mode)`` (`keras_attn.data.augment`):
            each epoch's flips and crops of the training images; ``None``: none.
        **kwargs: passed to `keras.utils.PyDataset` (``workers``, ...).

    Example (``model.fit(batches, shuffle=False)`` trains on them):
        >>> x = np.zeros((10, 4, 4, 3), "uint8"); y = np.arange(10)
        >>> batches = ArrayBatches(x, y, 4, shuffle=True, seed=0)
        >>> batches.set_epoch(0)
        >>> len(batches), batches[0][0].dtype, batches[2][0].shape
        (3, dtype('float32'), (2, 4, 4, 3))
    """

    def __init__(
        self, x, y=None, batch_size=128, *, shuffle=False, seed=0, augmentation=None, **kwargs
    ):
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
        self.augmentation = augmentation  # (kind, padding, pad_mode) or None
        self.set_epoch(0)

    def set_epoch(self, epoch):
        """Select the order of epoch ``epoch`` (0-based); no effect without shuffle."""
        self.epoch = int(epoch)
        if self.shuffle:
            self._order = epoch_order(len(self.x), self.seed, self.epoch)
        else:
            self._order = None
        self._augment = None
        if self.augmentation and self.augmentation[0] != "none":
            kind, padding, _ = self.augmentation
            self._augment = epoch_augmentation(len(self.x), self.seed, self.epoch, kind, padding)

    def __len__(self):
        return -(-len(self.x) // self.batch_size)

    def __getitem__(self, index):
        if index < 0 or index >= len(self):
            raise IndexError(f"batch index {index} out of range 0..{len(self) - 1}")
        sl = slice(index * self.batch_size, (index + 1) * self.batch_size)
        idx = self._order[sl] if self._order is not None else sl
        x = self.x[idx]
        if self._augment is not None:
            dy, dx, flip = (a[idx] for a in self._augment)
            x = augment(
                x, dy, dx, flip, padding=self.augmentation[1], pad_mode=self.augmentation[2]
            )
        x = x.astype(np.float32)
        if self.y is None:
            return (x,)
        return x, self.y[idx]
