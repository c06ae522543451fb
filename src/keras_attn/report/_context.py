"""Plain sentences for the data, training settings and machines behind a group of records.

Example:
>>> rec = {"data": {"source": {"kind": "tfds", "location": "tfds:cifar10", "version": "3.0.2"},
...        "counts": {"train": 45000, "val": 5000, "test": 10000}}}
>>> data_text([rec])
'tensorflow-datasets `cifar10` 3.0.2: 45,000 train / 5,000 val / 10,000 test images'
"""

from __future__ import annotations

from keras_attn.report._format import int_ranges

__all__ = ["data_name", "data_text", "machines_text", "seeds_text", "subset_text", "training_text"]

# The library that carries each backend's version in a record's environment.
_BACKEND_LIBRARY = {"tensorflow": ("tensorflow", "tensorflow-cpu"), "jax": ("jax",)}


def _count(n):
    return f"{n:,}" if isinstance(n, int) else "?"


def subset_text(subset):
    """The ``take`` sizes a record's data was cut to, as words; ``""`` for the full data.

    Example:
    >>> subset_text({"train": 2000, "val": None, "test": 1000, "test_seed": 0})
    'cut to the first 2,000 train and 1,000 random test images (test sample seed 0)'
    """
    if not subset:
        return ""
    parts = []
    if subset.get("train") is not None:
        parts.append(f"the first {_count(subset['train'])} train")
    if subset.get("val") is not None:
        parts.append(f"the first {_count(subset['val'])} val")
    if subset.get("test") is not None:
        parts.append(f"{_count(subset['test'])} random test")
    if not parts:
        return ""
    text = "cut to " + (", ".join(parts[:-1]) + " and " if len(parts) > 1 else "") + parts[-1]
    text += " images"
    if subset.get("test") is not None:
        text += f" (test sample seed {subset.get('test_seed')})"
    return text


def data_name(source):
    """The data's name: the source's ``name``, else the last part of its location.

    A report names data by name and fingerprint, never by the folder it sat in on
    one machine.

    Example:
    >>> data_name({"kind": "folder", "location": "/tmp/cifar"})
    'cifar'
    >>> data_name({"kind": "tfds", "name": "cifar10", "location": "tfds:cifar10"})
    'cifar10'
    """
    if source.get("name"):
        return str(source["name"])
    location = str(source.get("location")).removeprefix("tfds:").replace("\\", "/")
    return location.rstrip("/").rsplit("/", 1)[-1] or location


def data_text(records):
    """What the data are (by name), its sizes, split, subset and fingerprint (first record's).

    Every record of one settings id has the same data (its fingerprint is
    part of the settings id).

    Example:
    >>> rec = {"data": {"source": {"kind": "npz", "location": "/home/me/tiny.npz"},
    ...        "counts": {"train": 8, "val": 2, "test": 4}, "fingerprint": "0123456789abcdef99"}}
    >>> data_text([rec])
    '`.npz` file `tiny.npz`: 8 train / 2 val / 4 test images; data fingerprint `0123456789abcdef`'
    """
    d = records[0].get("data", {}) or {}
    src = d.get("source", {}) or {}
    kind, name = src.get("kind"), data_name(src)
    if kind == "tfds":
        where = f"tensorflow-datasets `{name}` {src.get('version')}"
    elif kind == "folder":
        where = f"image folder `{name}` (decoded from image files"
        if src.get("image_size"):
            where += ", resized to " + "x".join(map(str, src["image_size"]))
        where += ", not tensorflow-datasets' arrays)"
    elif kind == "npz":
        where = f"`.npz` file `{name}`"
    else:
        where = f"{kind} `{name}`"
    counts = d.get("counts", {}) or {}
    text, shape = where, d.get("image_shape")
    if d.get("class_names") and shape:
        text += f": {len(d['class_names'])} classes of {'x'.join(map(str, shape))} images"
    if counts:
        text += (
            f"{',' if text != where else ':'} {_count(counts.get('train'))} train / "
            f"{_count(counts.get('val'))} val / {_count(counts.get('test'))} test images"
        )
    split = d.get("split", {}) or {}
    if split.get("split_seed") is not None:
        text += f" (validation: seeded permutation of the train images, seed {split['split_seed']})"
    subset = subset_text(d.get("subset"))
    if subset:
        text += f", {subset}"
    if d.get("fingerprint"):
        text += f"; data fingerprint `{str(d['fingerprint'])[:16]}`"
    return text


def seeds_text(records):
    """The seeds of the runs, as base seed + run index and the runs present.

    Example:
    >>> seeds_text([{"run": r, "settings": {"base_seed": 0}} for r in (0, 1, 2, 5)])
    'base seed 0 + run index (runs 0-2, 5)'
    """
    bases = sorted({str(r.get("settings", {}).get("base_seed")) for r in records})
    runs = int_ranges(r["run"] for r in records if isinstance(r.get("run"), int))
    return f"base seed {', '.join(bases)} + run index (runs {runs})"


def training_text(records):
    """Optimizer, learning rate, momentum, batch size, epochs, seeds, preprocessing."""
    rec = records[0]
    s = rec.get("settings", {}) or {}
    return (
        f"optimizer {s.get('optimizer')}, learning rate {s.get('learning_rate')}, "
        f"momentum {s.get('momentum')}, batch size {s.get('batch_size')}, "
        f"{s.get('epochs')} epochs, seeds: {seeds_text(records)}; "
        f"preprocessing: {rec.get('preprocessing')}; augmentation: {rec.get('augmentation')}"
    )


def machines_text(records):
    """The backends, devices and library versions the runs ran on, with their run counts.

    Example:
    >>> env = {"backend": "jax", "device": "GPU: gpu:NVIDIA H200",
    ...        "versions": {"keras": "3.15.1", "jax": "0.11.2"}}
    >>> machines_text([{"environment": env, "training": {"jit_compile": True}}] * 2)
    'jax backend, GPU: gpu:NVIDIA H200 (keras 3.15.1, jax 0.11.2; jit on): 2 runs'
    """
    counts = {}
    for r in records:
        env = r.get("environment", {}) or {}
        backend, versions = env.get("backend"), env.get("versions", {}) or {}
        libs = [f"keras {versions['keras']}"] if versions.get("keras") else []
        libs += [f"{k} {versions[k]}" for k in _BACKEND_LIBRARY.get(backend, ()) if k in versions]
        if backend == "torch" and versions.get("torch"):
            libs.append(f"torch {versions['torch']}")
        training = r.get("training", {}) or {}
        extra = []
        if "jit_compile" in training:
            extra.append("jit on" if training["jit_compile"] else "jit off")
        if training.get("mixed_precision"):
            extra.append(str(training["mixed_precision"]))
        detail = ", ".join(libs) + ("; " + ", ".join(extra) if extra else "")
        key = f"{backend} backend, {env.get('device')}" + (f" ({detail})" if detail else "")
        counts[key] = counts.get(key, 0) + 1
    return "; ".join(f"{key}: {n} run{'s' if n != 1 else ''}" for key, n in sorted(counts.items()))
