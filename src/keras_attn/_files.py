"""Files on a local disk or any ``tf.io.gfile`` path (``gs://``...), written atomically.

Every write goes to a temporary name beside the target and is renamed over
it, so a killed process leaves the old file or the new one, never half of
one. TensorFlow is imported only for remote paths.

Example:
>>> import os, tempfile
>>> path = os.path.join(tempfile.mkdtemp(), "a", "b.json")
>>> write_atomic(path, json_line({"x": 1}))
>>> read_json(path)
{'x': 1}
"""

from __future__ import annotations

import glob as _glob
import json
import os
import posixpath
import uuid


def remote(path):
    """Whether ``path`` is a URL-like ``tf.io.gfile`` path (``gs://...``), not a local one."""
    return "://" in str(path)


def join(*parts):
    """``os.path.join`` for local paths, ``posixpath.join`` for remote ones."""
    parts = [str(p) for p in parts]
    return posixpath.join(*parts) if remote(parts[0]) else os.path.join(*parts)


def gfile():
    """``tf.io.gfile``, imported only when a remote path needs it."""
    import tensorflow as tf

    return tf.io.gfile


def exists(path):
    """Whether ``path`` exists."""
    return gfile().exists(path) if remote(path) else os.path.exists(path)


def makedirs(path):
    """Create ``path`` and its parents; an existing folder (or ``""``, the current one) is fine."""
    if remote(path):
        gfile().makedirs(path)
    elif path:
        os.makedirs(path, exist_ok=True)


def read_bytes(path):
    """The whole content of ``path``."""
    if remote(path):
        with gfile().GFile(path, "rb") as f:
            return f.read()
    with open(path, "rb") as f:
        return f.read()


def write_atomic(path, data: bytes):
    """Write ``data`` to a temporary file beside ``path``, then rename it over ``path``."""
    parent = posixpath.dirname(path) if remote(path) else os.path.dirname(path)
    makedirs(parent)
    tmp = join(parent or ".", f".tmp-{uuid.uuid4().hex}-{os.path.basename(path)}")
    if remote(path):
        gf = gfile()
        with gf.GFile(tmp, "wb") as f:
            f.write(data)
        gf.rename(tmp, path, overwrite=True)
        return
    with open(tmp, "wb") as f:
        f.write(data)
        f.flush()
        os.fsync(f.fileno())
    os.replace(tmp, path)


def remove(path):
    """Delete the file ``path`` if it exists."""
    if remote(path):
        if gfile().exists(path):
            gfile().remove(path)
    elif os.path.exists(path):
        os.remove(path)


def prune_empty_dirs(out_dir, *parts):
    """Remove OUT/a/b/c, then OUT/a/b, then OUT/a while empty (local folders only)."""
    if remote(out_dir):
        return
    for k in range(len(parts), 0, -1):
        try:
            os.rmdir(os.path.join(out_dir, *parts[:k]))
        except OSError:
            return


def remove_stale_temps(path):
    """Delete temporary files a killed writer of ``path`` left behind (local folders)."""
    if remote(path):
        return
    pattern = os.path.join(os.path.dirname(path), f".tmp-*-{os.path.basename(path)}")
    for tmp in _glob.glob(pattern):
        try:
            os.remove(tmp)
        except OSError:
            pass


def glob_paths(pattern):
    """The paths matching ``pattern``, sorted."""
    if remote(pattern):
        return sorted(gfile().glob(pattern))
    return sorted(_glob.glob(pattern))


def read_json(path):
    """The JSON value stored in ``path``."""
    return json.loads(read_bytes(path).decode("utf-8"))


def write_json(path, obj, *, indent=None):
    """Write ``obj`` as JSON to ``path`` atomically: one line (`json_line`), or indented.

    Example:
    >>> import tempfile
    >>> p = join(tempfile.mkdtemp(), "a", "b.json")
    >>> write_json(p, {"x": 1}, indent=2); read_json(p)
    {'x': 1}
    """
    if indent is None:
        data = json_line(obj)
    else:
        data = (json.dumps(obj, indent=indent, sort_keys=True) + "\n").encode("utf-8")
    write_atomic(str(path), data)


def json_line(obj) -> bytes:
    """``obj`` as one line of UTF-8 JSON (sorted keys, NaN allowed), newline included."""
    return (json.dumps(obj, sort_keys=True, allow_nan=True) + "\n").encode("utf-8")
