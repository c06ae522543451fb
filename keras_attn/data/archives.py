"""Image-folder archives: `extract_archive` unpacks a ``.tar`` / ``.tar.gz`` once.

`load_dataset` unpacks an archive named by `ARCHIVE_EXTENSIONS` into
``CACHE/<name>-<key>`` (``cache_dir``, ``$KERAS_ATTN_CACHE`` or ``~/.cache/keras_attn``)
and reads the image folder inside.

Example:
    >>> "cifar10-jpeg.tar.gz".endswith(ARCHIVE_EXTENSIONS)
    True
"""

from __future__ import annotations

import hashlib
import os
import tarfile
from pathlib import Path

__all__ = ["ARCHIVE_EXTENSIONS", "extract_archive"]


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
