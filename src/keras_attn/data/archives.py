"""Image-folder archives: `extract_archive` unpacks a ``.tar`` / ``.tar.gz`` once.

`load_dataset` unpacks an archive named by `ARCHIVE_EXTENSIONS` into
``CACHE/archive-<sha256>`` (``cache_dir``, ``$KERAS_ATTN_CACHE`` or ``~/.cache/keras_attn``),
keyed by the archive's contents, and reads the image folder inside. The same archive at two
paths is unpacked once; its sha256 is read once per path, size and modification time (kept
in ``CACHE/digests/``).
"""

from __future__ import annotations

import hashlib
import os
import tarfile
from pathlib import Path

from keras_attn import _files as files

__all__ = ["ARCHIVE_EXTENSIONS", "extract_archive"]


#: Archive endings `load_dataset` unpacks as image folders.
ARCHIVE_EXTENSIONS = (".tar.gz", ".tgz", ".tar")
_CHUNK = 1 << 20


def _cache_root(cache_dir=None):
    """The cache folder: ``cache_dir``, else ``$KERAS_ATTN_CACHE``, else ``~/.cache/keras_attn``."""
    root = cache_dir or os.environ.get("KERAS_ATTN_CACHE") or "~/.cache/keras_attn"
    return Path(root).expanduser()


def _sha256_file(path):
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for chunk in iter(lambda: f.read(_CHUNK), b""):
            h.update(chunk)
    return h.hexdigest()


def _archive_digest(archive, root):
    """The archive's sha256, read once per (path, size, modification time): kept in
    ``root/digests/`` so that a later load does not read the archive again."""
    archive = Path(archive).expanduser().resolve()
    st = archive.stat()
    identity = f"{archive}\0{st.st_size}\0{st.st_mtime_ns}".encode()
    memo = root / "digests" / hashlib.sha256(identity).hexdigest()[:32]
    try:
        digest = memo.read_text().strip()
        if len(digest) == 64:
            return digest
    except OSError:
        pass
    digest = _sha256_file(archive)
    files.write_atomic(str(memo), f"{digest}\n".encode())
    return digest


def _archive_folder(archive, cache_dir):
    """Where `load_dataset` unpacks ``archive``, and the archive's sha256."""
    root = _cache_root(cache_dir)
    digest = _archive_digest(archive, root)
    return root / f"archive-{digest[:16]}", digest


def _image_root(folder):
    """The folder holding ``train`` and ``test``: ``folder`` or its only sub-folder."""
    if (folder / "train").is_dir():
        return folder
    subs = [p for p in folder.iterdir() if p.is_dir() and not p.name.startswith(".")]
    return subs[0] if len(subs) == 1 and (subs[0] / "train").is_dir() else folder


def extract_archive(archive, dest, digest=None):
    """Unpack a ``.tar``/``.tar.gz`` image-folder archive into ``dest`` once.

    A marker file records the archive's sha256; a later call with an archive of
    the same contents (at this path or another) returns at once. Members that
    would land outside ``dest`` are refused (``tarfile`` ``"data"`` filter).

    Args:
        archive: the archive (for example the offline CIFAR-10 JPEG copy).
        dest: the folder to unpack into (use a temporary or git-ignored one).
        digest: the archive's sha256 as hex, when known; read from the archive
            otherwise.

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
    stamp = f"sha256:{digest or _sha256_file(archive)}\n"
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
