"""Training-image augmentation: horizontal flips and random crops with padding, drawn once.

Every random choice of an epoch is drawn here, in one place (`epoch_augmentation`): for
each training image a crop offset and whether it is flipped, from the run's seed and the
epoch alone. ``model.fit``'s batches (`keras_attn.data.ArrayBatches`) apply them with
`augment` in NumPy; the JAX trainer applies the same numbers on the device, inside its
compiled step (`keras_attn.protocol.jax_program`); a test checks both give the same
images. Validation and test images are never augmented.

Example:
    >>> import numpy as np
    >>> x = np.arange(2 * 4 * 4 * 1, dtype="uint8").reshape(2, 4, 4, 1)
    >>> params = epoch_augmentation(2, seed=0, epoch=0, kind="flip_crop", padding=1)
    >>> augment(x, *params, padding=1, pad_mode="zero").shape
    (2, 4, 4, 1)
"""

from __future__ import annotations

import numpy as np

__all__ = ["AUGMENTATIONS", "PAD_MODES", "augment", "describe", "epoch_augmentation"]

#: What a run's training images may go through.
AUGMENTATIONS = ("none", "flip", "crop", "flip_crop")
#: How a crop's padding is filled: zeros, or the image mirrored at its edge.
PAD_MODES = ("zero", "reflect")


def epoch_augmentation(n, seed, epoch, kind, padding):
    """Each image's augmentation for one epoch: ``(dy, dx, flip)``, arrays of ``n``.

    ``dy, dx`` are the crop's top-left corner in the padded image, in ``0..2 *
    padding`` (``padding, padding``: the image itself when ``kind`` has no crop);
    ``flip`` whether the image is mirrored left to right. Drawn from
    ``default_rng([seed, epoch, 1])``: a function of the seed and the epoch alone, so a
    resumed run and both trainers see the same images. ``None`` for ``"none"``.

    Example:
        >>> dy, dx, flip = epoch_augmentation(3, seed=0, epoch=0, kind="crop", padding=4)
        >>> dy.tolist(), flip.tolist()
        ([8, 4, 0], [False, False, False])
    """
    if kind == "none":
        return None
    rng = np.random.default_rng([int(seed), int(epoch), 1])
    offsets = rng.integers(0, 2 * padding + 1, size=(2, n)).astype(np.int32)
    flips = rng.random(n) < 0.5
    if "crop" not in kind:
        offsets[:] = padding
    if "flip" not in kind:
        flips[:] = False
    return offsets[0], offsets[1], flips


def augment(x, dy, dx, flip, *, padding, pad_mode):
    """``x`` (uint8 ``(b, h, w, c)``) padded by ``padding``, cropped at ``(dy, dx)`` and
    flipped where ``flip``: each image by its own numbers.

    Example: see the module docstring.
    """
    b, h, w, c = x.shape
    mode = "reflect" if pad_mode == "reflect" else "constant"
    padded = np.pad(x, ((0, 0), (padding, padding), (padding, padding), (0, 0)), mode=mode)
    rows = np.asarray(dy)[:, None] + np.arange(h)[None]  # (b, h)
    cols = np.asarray(dx)[:, None] + np.arange(w)[None]  # (b, w)
    cols = np.where(np.asarray(flip)[:, None], cols[:, ::-1], cols)
    return padded[np.arange(b)[:, None, None], rows[:, :, None], cols[:, None, :]]


def describe(kind, padding, pad_mode):
    """What a record says about its augmentation, in words.

    Example:
        >>> describe("flip_crop", 4, "zero"), describe("none", 4, "zero")
        ('horizontal flip (p=0.5), random 4-pixel crop of the zero-padded image', 'none')
    """
    parts = []
    if "flip" in kind:
        parts.append("horizontal flip (p=0.5)")
    if "crop" in kind:
        parts.append(f"random {padding}-pixel crop of the {pad_mode}-padded image")
    return ", ".join(parts) or "none"
