"""The decode cache of image folders: an ``.npz`` copy keyed by the folder's files, sizes and times.

`load_dataset` reads an image folder through it when given ``cache_dir``: the cache file
is ``CACHE_DIR/folder-<key>.npz`` (written with `keras_attn.data.npz.save_npz`), and any
change to the folder's file list, sizes, times or ``image_size`` gives a new key.

Example:
    >>> import tempfile
    >>> from PIL import Image
    >>> root, cache = Path(tempfile.mkdtemp()), tempfile.mkdtemp()
    >>> for part in ("train/a", "test/a"):
    ...     (root / part).mkdir(parents=True)
    ...     Image.new("RGB", (4, 4)).save(root / part / "0.png")
    >>> _, _, info = _load_folder_cached(root, image_size=None, cache_dir=cache)
    >>> Path(info["cache"]).name.startswith("folder-")
    True
"""

from __future__ import annotations

import hashlib
from pathlib import Path

import numpy as np

from keras_attn.data.dataset import _SPLITS
from keras_attn.data.folders import _check_image_size, _list_image_folder, load_image_folder
from keras_attn.data.npz import load_npz, save_npz

__all__ = []

_CACHE_FORMAT = 1


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
                    "name": root.resolve().name,
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
