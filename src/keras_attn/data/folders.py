"""The image-folder source: `load_image_folder` decodes ``ROOT/{train,test}/<class>/*``.

Images are decoded with Pillow on a thread pool; `keras_attn.data.folder_cache` keeps
a decoded copy.
"""

from __future__ import annotations

import io
import os
from pathlib import Path

import numpy as np

from keras_attn.data.dataset import _SPLITS

__all__ = ["IMAGE_EXTENSIONS", "load_image_folder"]


IMAGE_EXTENSIONS = (".jpg", ".jpeg", ".png", ".bmp", ".gif", ".webp", ".tif", ".tiff", ".ppm")
"""File name endings the image-folder loader reads (case-insensitive)."""


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
        "name": root.resolve().name,
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
