"""Tests of keras_attn.data: the three sources, the split, the batches, the errors."""

import json
import logging
import os
import tarfile
import time
from pathlib import Path

import numpy as np
import pytest
from data_helpers import (
    CIFAR10_CLASSES,
    copy_cifar_subset,
    synthetic_arrays,
    write_image_folder,
    write_npz,
)
from PIL import Image

from keras_attn import data
from keras_attn.data import folders
from keras_attn.data import tfds as tfds_source

# --------------------------------------------------------------------------- image folder


def test_image_folder_reads_pixels_labels_and_sorted_classes(tmp_path):
    pixels = write_image_folder(tmp_path, classes=("frog", "cat", "dog"), n_train=4, n_test=2)
    (Path(tmp_path) / "train" / "cat" / "notes.txt").write_text("not an image")
    (Path(tmp_path) / "train" / "cat" / ".hidden.png").write_bytes(b"junk")
    (x_tr, y_tr, x_te, y_te), names, info = data.load_image_folder(tmp_path)
    assert names == ["cat", "dog", "frog"]
    assert x_tr.shape == (12, 8, 8, 3) and x_tr.dtype == np.uint8
    assert x_te.shape == (6, 8, 8, 3)
    assert y_tr.tolist() == [0] * 4 + [1] * 4 + [2] * 4
    # PNG is lossless: every pixel must come back exactly, in sorted file order.
    np.testing.assert_array_equal(x_tr[4], pixels[("train", "dog", 0)])
    np.testing.assert_array_equal(x_te[5], pixels[("test", "frog", 1)])
    assert info["kind"] == "folder" and info["ignored_files"] == 1


def test_image_folder_converts_grayscale_and_resizes(tmp_path):
    write_image_folder(tmp_path, classes=("a", "b"), n_train=2, n_test=1, size=8)
    Image.fromarray(np.full((8, 8), 77, np.uint8), mode="L").save(tmp_path / "train/a/gray.png")
    (x_tr, *_), _, _ = data.load_image_folder(tmp_path)
    gray = x_tr[2]  # a/000, a/001, a/gray
    assert gray.shape == (8, 8, 3) and (gray == 77).all()
    Image.fromarray(np.zeros((5, 9, 3), np.uint8)).save(tmp_path / "test/b/odd.png")
    (x_tr, _, x_te, _), _, info = data.load_image_folder(tmp_path, image_size=(4, 6))
    assert x_tr.shape[1:] == (4, 6, 3) and x_te.shape[1:] == (4, 6, 3)
    assert info["image_size"] == [4, 6]


def test_load_dataset_split_is_deterministic_complete_and_recorded(tmp_path):
    write_image_folder(tmp_path, classes=("a", "b", "c"), n_train=10, n_test=3)
    ds1 = data.load_dataset(tmp_path, val_size=6, split_seed=0)
    ds2 = data.load_dataset(str(tmp_path), val_size=6, split_seed=0)
    ds3 = data.load_dataset(tmp_path, val_size=6, split_seed=1)
    assert (len(ds1.y_train), len(ds1.y_val), len(ds1.y_test)) == (24, 6, 9)
    np.testing.assert_array_equal(ds1.x_val, ds2.x_val)
    assert ds1.fingerprint() == ds2.fingerprint() != ds3.fingerprint()
    assert not np.array_equal(ds1.x_val, ds3.x_val)
    # train + val is exactly the original training set (nothing lost or repeated)
    (x_all, *_), _, _ = data.load_image_folder(tmp_path)
    both = np.concatenate([ds1.x_train, ds1.x_val]).reshape(30, -1)
    assert sorted(map(bytes, both)) == sorted(map(bytes, x_all.reshape(30, -1)))
    d = ds1.describe()
    json.dumps(d)  # JSON-able: it goes into every record
    assert d["counts"] == {"train": 24, "val": 6, "test": 9}
    assert d["split"]["val_size"] == 6 and d["split"]["split_seed"] == 0
    assert d["source"]["kind"] == "folder" and d["class_names"] == ["a", "b", "c"]
    assert d["source"]["name"] == tmp_path.name  # what reports name it by, with the fingerprint
    assert ds1.input_shape == (8, 8, 3) and ds1.num_classes == 3


def test_split_train_val_indices():
    tr, va = data.split_train_val(50, val_size=5, seed=3)
    assert len(va) == 5 and len(tr) == 45
    assert sorted(np.concatenate([tr, va]).tolist()) == list(range(50))
    tr2, va2 = data.split_train_val(50, val_size=5, seed=3)
    np.testing.assert_array_equal(va, va2)


@pytest.mark.parametrize(
    "kwargs, match",
    [
        ({"val_size": 50}, "leaves no training images"),
        ({"val_size": -1}, "val_size"),
        ({"val_size": 2.5}, "val_size"),
        ({"val_size": 5, "seed": -1}, "split_seed"),
    ],
)
def test_split_train_val_rejects_bad_values(kwargs, match):
    with pytest.raises(ValueError, match=match):
        data.split_train_val(50, **kwargs)


def test_take_keeps_a_subset(tmp_path):
    write_image_folder(tmp_path, classes=("a", "b"), n_train=10, n_test=5)
    ds = data.load_dataset(tmp_path, val_size=4)
    small = ds.take(train=6, val=2, test=3, seed=0)
    assert (len(small.y_train), len(small.y_val), len(small.y_test)) == (6, 2, 3)
    np.testing.assert_array_equal(small.x_train, ds.x_train[:6])
    assert small.describe()["subset"] == {"train": 6, "val": 2, "test": 3, "test_seed": 0}
    assert small.fingerprint() != ds.fingerprint()
    with pytest.raises(ValueError, match="more than the 10 test images"):
        ds.take(test=11)
    with pytest.raises(ValueError, match="positive integer"):
        ds.take(train=0)


# --------------------------------------------------------------------------- errors


def _bad_folder(tmp_path, case):
    if case == "missing":
        return tmp_path / "nope"
    if case == "empty":
        tmp_path.mkdir(exist_ok=True)
        return tmp_path
    write_image_folder(tmp_path, classes=("cat", "dog"), n_train=2, n_test=1)
    if case == "no_test":
        for p in (tmp_path / "test").rglob("*"):
            if p.is_file():
                p.unlink()
        for d in sorted((tmp_path / "test").glob("*"), reverse=True):
            d.rmdir()
        (tmp_path / "test").rmdir()
    elif case == "no_classes":
        for p in (tmp_path / "train").rglob("*.png"):
            p.unlink()
        for d in (tmp_path / "train").iterdir():
            d.rmdir()
    elif case == "class_mismatch":
        (tmp_path / "test" / "dog").rename(tmp_path / "test" / "bird")
    elif case == "empty_class":
        for p in (tmp_path / "train" / "dog").glob("*.png"):
            p.unlink()
    elif case == "unreadable":
        (tmp_path / "train" / "dog" / "broken.jpg").write_bytes(b"this is not a jpeg")
    elif case == "sizes_differ":
        Image.fromarray(np.zeros((9, 7, 3), np.uint8)).save(tmp_path / "test/cat/big.png")
    return tmp_path


@pytest.mark.parametrize(
    "case, error, match",
    [
        ("missing", FileNotFoundError, "does not exist"),
        ("empty", FileNotFoundError, "has no 'train' sub-folder"),
        ("no_test", FileNotFoundError, "has no 'test' sub-folder"),
        ("no_classes", ValueError, "holds no class folders"),
        ("class_mismatch", ValueError, r"only in train: \['dog'\], only in test: \['bird'\]"),
        ("empty_class", ValueError, r"train/dog' holds no images"),
        ("unreadable", ValueError, r"Cannot read 1 of 7 images in .*\n  .*train/dog/broken\.jpg"),
        ("sizes_differ", ValueError, r"big\.png is 7x9 .* image_size"),
    ],
)
def test_image_folder_errors_are_clear(tmp_path, case, error, match):
    root = _bad_folder(tmp_path / "root", case)
    with pytest.raises(error, match=match):
        data.load_dataset(root, val_size=1)


def test_every_unreadable_image_is_named_in_one_error(tmp_path):
    write_image_folder(tmp_path, classes=("cat", "dog"), n_train=2, n_test=1)
    bad = ["train/cat/a.jpg", "train/dog/b.png", "test/dog/c.jpeg"]
    for name in bad:
        (tmp_path / name).write_bytes(b"not an image")
    with pytest.raises(ValueError) as info:
        data.load_dataset(tmp_path, val_size=1)
    message = str(info.value)
    assert message.startswith(f"Cannot read 3 of 9 images in {tmp_path}:")
    for name in bad:
        assert f"{tmp_path / name}: " in message


def test_a_long_list_of_unreadable_images_is_cut_with_a_count(tmp_path):
    write_image_folder(tmp_path, classes=("cat", "dog"), n_train=1, n_test=1)
    for i in range(folders._MAX_LISTED + 5):
        (tmp_path / "train" / "cat" / f"bad{i:02d}.jpg").write_bytes(b"x")
    with pytest.raises(ValueError, match=r"(?s)Cannot read 25 of 29 .*\.\.\. and 5 more"):
        data.load_dataset(tmp_path, val_size=1)


def test_unknown_source_kinds_are_rejected(tmp_path):
    (tmp_path / "x.csv").write_text("1,2")
    with pytest.raises(ValueError, match=r"neither an .npz file nor an archive \(.tar.gz, "):
        data.load_dataset(tmp_path / "x.csv")
    with pytest.raises(FileNotFoundError, match=r"a .tar.gz \(.tgz, .tar\) of one, or an .npz"):
        data.load_dataset(tmp_path / "missing")
    with pytest.raises(ValueError, match="source"):
        data.load_dataset("")
    with pytest.raises(ValueError, match="image_size"):
        data.load_image_folder(tmp_path, image_size=(0, 4))


# --------------------------------------------------------------------------- npz and cache


def test_npz_round_trip_and_keras_label_shape(tmp_path):
    x_tr, y_tr, x_te, y_te = synthetic_arrays(n_train=30, n_test=10)
    path = tmp_path / "d.npz"
    data.save_npz(path, x_tr, y_tr[:, None], x_te, y_te[:, None], class_names=list("abcdefghij"))
    ds = data.load_dataset(path, val_size=10)
    assert ds.x_train.shape == (20, 32, 32, 3) and ds.y_train.ndim == 1
    assert ds.class_names == tuple("abcdefghij")
    assert ds.describe()["source"]["kind"] == "npz"
    assert ds.describe()["source"]["name"] == "d.npz"
    assert sorted(np.concatenate([ds.y_train, ds.y_val]).tolist()) == sorted(y_tr.tolist())


@pytest.mark.parametrize(
    "arrays, match",
    [
        ({"x_train": np.zeros((2, 4, 4, 3), np.uint8)}, "lacks"),
        (
            {
                "x_train": np.zeros((2, 4, 4, 3), np.float32),
                "y_train": np.zeros(2, int),
                "x_test": np.zeros((1, 4, 4, 3), np.uint8),
                "y_test": np.zeros(1, int),
            },
            "x_train must be uint8",
        ),
        (
            {
                "x_train": np.zeros((2, 4, 4, 3), np.uint8),
                "y_train": np.array([0, 5]),
                "x_test": np.zeros((1, 4, 4, 3), np.uint8),
                "y_test": np.zeros(1, int),
                "class_names": np.array(["a", "b"]),
            },
            "labels must lie in 0..1",
        ),
    ],
)
def test_npz_errors_are_clear(tmp_path, arrays, match):
    path = tmp_path / "bad.npz"
    np.savez(path, **arrays)
    with pytest.raises(ValueError, match=match):
        data.load_npz(path)


def test_folder_cache_is_used_and_invalidated(tmp_path):
    root = tmp_path / "imgs"
    write_image_folder(root, classes=("a", "b"), n_train=3, n_test=2)
    cache = tmp_path / "cache"
    first = data.load_dataset(root, val_size=2, cache_dir=cache)
    files = list(cache.glob("*.npz"))
    assert len(files) == 1 and first.source["cache"] == str(files[0])
    second = data.load_dataset(root, val_size=2, cache_dir=cache)
    assert second.fingerprint() == first.fingerprint()
    # a changed image changes the cache key (file size / mtime), hence the data
    Image.fromarray(np.full((8, 8, 3), 5, np.uint8)).save(root / "train/a/000.png")
    os.utime(root / "train/a/000.png", ns=(1, 1))
    third = data.load_dataset(root, val_size=2, cache_dir=cache)
    assert len(list(cache.glob("*.npz"))) == 2
    assert third.fingerprint() != first.fingerprint()


def test_extract_archive_once_and_safely(tmp_path):
    src = tmp_path / "src"
    write_image_folder(src, classes=("a", "b"), n_train=2, n_test=1)
    archive = tmp_path / "imgs.tar.gz"
    with tarfile.open(archive, "w:gz") as tar:
        tar.add(src / "train", arcname="train")
        tar.add(src / "test", arcname="test")
    dest = data.extract_archive(archive, tmp_path / "out")
    assert data.load_dataset(dest, val_size=1).num_classes == 2
    marker = dest / ".extracted"
    stamp = marker.stat().st_mtime_ns
    data.extract_archive(archive, dest)
    assert marker.stat().st_mtime_ns == stamp  # second call: nothing unpacked
    evil = tmp_path / "evil.tar"
    with tarfile.open(evil, "w") as tar:
        info = tarfile.TarInfo("../escape.txt")
        tar.addfile(info)
    with pytest.raises(tarfile.TarError):
        data.extract_archive(evil, tmp_path / "evil_out")
    assert not (tmp_path / "escape.txt").exists()


# --------------------------------------------------------------------------- tfds


def test_tfds_source_with_mock_data():
    tfds = pytest.importorskip("tensorflow_datasets")
    with tfds.testing.mock_data(num_examples=30):
        ds = data.load_dataset("tfds:cifar10", val_size=10, split_seed=0)
    assert ds.x_train.shape == (20, 32, 32, 3) and ds.x_train.dtype == np.uint8
    assert len(ds.y_val) == 10 and len(ds.y_test) == 30
    assert ds.class_names == tuple(str(i) for i in range(10))
    assert ds.describe()["source"]["kind"] == "tfds"
    assert ds.describe()["source"]["location"] == "tfds:cifar10"
    assert ds.describe()["source"]["name"] == "cifar10"


def test_tfds_download_offline_fails_in_one_line_within_seconds(tmp_path, monkeypatch):
    """The network faked off: one clear error at once, and no half-made tfds folder."""
    pytest.importorskip("tensorflow_datasets")
    import socket

    def no_network(*args, **kwargs):
        raise OSError("Network is unreachable")

    monkeypatch.setattr(socket, "create_connection", no_network)
    t0 = time.monotonic()
    with pytest.raises(ConnectionError) as info:
        data.load_dataset("tfds:cifar10", tfds_data_dir=str(tmp_path), download=True)
    assert time.monotonic() - t0 < 30
    message = str(info.value)
    assert "\n" not in message
    assert message.startswith("Cannot download 'cifar10': no network")
    assert "--data-dir" in message
    assert not (tmp_path / "cifar10").exists()


def _failing_download(tfds, monkeypatch):
    """tfds.load whose download makes what an unreachable download leaves, then fails."""
    monkeypatch.setattr(tfds_source, "_reachable", lambda host: True)  # where it is looked up
    real_load = tfds.load

    def failing_load(name, **kwargs):
        if not kwargs.get("download"):
            return real_load(name, **kwargs)
        top = Path(kwargs["data_dir"])
        (top / "cifar10" / "3.0.2.incomplete").mkdir(parents=True)
        (top / "downloads" / "extracted").mkdir(parents=True)
        (top / "downloads" / "cifar-10-binary.tar.gz.tmp").write_text("partial")
        raise ConnectionError("Failed to connect")

    monkeypatch.setattr(tfds, "load", failing_load)


def test_a_failed_tfds_download_leaves_nothing_behind(tmp_path, monkeypatch):
    tfds = pytest.importorskip("tensorflow_datasets")
    _failing_download(tfds, monkeypatch)
    top = tmp_path / "tfds"
    with pytest.raises(ConnectionError, match="Nothing was kept in"):
        data.load_dataset("tfds:cifar10", tfds_data_dir=str(top), download=True)
    assert not top.exists()
    # In a data folder already in use, only what the attempt added goes.
    (top / "mnist" / "3.0.1").mkdir(parents=True)
    (top / "downloads").mkdir()
    (top / "downloads" / "mnist.tar.gz").write_text("kept")
    with pytest.raises(ConnectionError, match="Nothing was kept in"):
        data.load_dataset("tfds:cifar10", tfds_data_dir=str(top), download=True)
    assert sorted(p.relative_to(top).as_posix() for p in top.rglob("*")) == [
        "downloads",
        "downloads/mnist.tar.gz",
        "mnist",
        "mnist/3.0.1",
    ]


def test_a_missing_tfds_copy_is_one_error_without_tfds_warnings(tmp_path, caplog):
    pytest.importorskip("tensorflow_datasets")
    with caplog.at_level(logging.WARNING), pytest.raises(FileNotFoundError):
        data.load_dataset("tfds:cifar10", tfds_data_dir=str(tmp_path))
    assert "Variant folder" not in caplog.text
    assert not list(tmp_path.iterdir())


def test_image_folder_archive_is_unpacked_once_into_the_cache(tmp_path):
    import tarfile

    write_image_folder(tmp_path / "src" / "cifar-like", classes=("cat", "dog"), n_train=3, n_test=1)
    archive = tmp_path / "cifar-like.tar.gz"
    with tarfile.open(archive, "w:gz") as tar:
        tar.add(tmp_path / "src" / "cifar-like", arcname="cifar-like")
    folder = data.load_dataset(tmp_path / "src" / "cifar-like", val_size=2)
    packed = data.load_dataset(archive, val_size=2, cache_dir=str(tmp_path / "cache"))
    assert packed.fingerprint() == folder.fingerprint()
    assert packed.source["archive"] == str(archive.resolve())
    assert packed.source["name"] == folder.source["name"] + ".tar.gz" == "cifar-like.tar.gz"
    again = data.load_dataset(archive, val_size=2, cache_dir=str(tmp_path / "cache"))
    assert again.fingerprint() == folder.fingerprint()
    assert len(list((tmp_path / "cache").glob("archive-*"))) == 1


def _tar_gz(src, path):
    path.parent.mkdir(parents=True, exist_ok=True)
    with tarfile.open(path, "w:gz") as tar:
        tar.add(src, arcname=src.name)
    return path


def test_an_archive_is_unpacked_once_per_contents_not_per_path(tmp_path, monkeypatch):
    from keras_attn.data import archives

    write_image_folder(tmp_path / "src" / "imgs", classes=("cat", "dog"), n_train=3, n_test=1)
    first = _tar_gz(tmp_path / "src" / "imgs", tmp_path / "a" / "imgs.tar.gz")
    second = tmp_path / "b" / "copy.tar.gz"  # the same bytes at another path and time
    second.parent.mkdir()
    second.write_bytes(first.read_bytes())
    os.utime(second, ns=(1, 1))
    reads = []
    real_sha256 = archives._sha256_file
    monkeypatch.setattr(archives, "_sha256_file", lambda p: reads.append(p) or real_sha256(p))
    cache = tmp_path / "cache"
    loaded = [data.load_dataset(p, val_size=2, cache_dir=str(cache)) for p in (first, second)]
    assert loaded[0].fingerprint() == loaded[1].fingerprint()
    assert len(list(cache.glob("archive-*"))) == 1
    assert len(reads) == 2  # each path's archive read once for its digest
    data.load_dataset(first, val_size=2, cache_dir=str(cache))
    assert len(reads) == 2  # its digest is kept: not read again
    # other contents: another folder
    Image.fromarray(np.full((8, 8, 3), 9, np.uint8)).save(tmp_path / "src/imgs/train/cat/000.png")
    changed = _tar_gz(tmp_path / "src" / "imgs", tmp_path / "c" / "imgs.tar.gz")
    other = data.load_dataset(changed, val_size=2, cache_dir=str(cache))
    assert other.fingerprint() != loaded[0].fingerprint()
    assert len(list(cache.glob("archive-*"))) == 2


def test_the_cache_defaults_to_keras_attn_cache(tmp_path, monkeypatch):
    write_image_folder(tmp_path / "src" / "imgs", classes=("cat", "dog"), n_train=3, n_test=1)
    archive = _tar_gz(tmp_path / "src" / "imgs", tmp_path / "imgs.tar.gz")
    monkeypatch.setenv("KERAS_ATTN_CACHE", str(tmp_path / "env-cache"))
    data.load_dataset(archive, val_size=2)
    assert len(list((tmp_path / "env-cache").glob("archive-*/imgs/train/cat/*.png"))) == 3


def test_tfds_without_data_fails_fast_with_instructions(tmp_path):
    pytest.importorskip("tensorflow_datasets")
    with pytest.raises(FileNotFoundError, match="--download"):
        data.load_dataset("tfds:cifar10", tfds_data_dir=str(tmp_path))
    with pytest.raises(ValueError, match="Unknown tensorflow-datasets name 'no_such_set'"):
        data.load_dataset("tfds:no_such_set", tfds_data_dir=str(tmp_path))


# --------------------------------------------------------------------------- batches


def test_array_batches_shapes_dtype_and_values():
    x, y, _, _ = synthetic_arrays(n_train=10, n_test=1)
    b = data.ArrayBatches(x, y, 4)
    assert len(b) == 3
    xb, yb = b[2]
    assert xb.dtype == np.float32 and xb.shape == (2, 32, 32, 3)
    np.testing.assert_array_equal(xb, x[8:].astype(np.float32))  # raw 0..255, not rescaled
    np.testing.assert_array_equal(yb, y[8:])
    (xp,) = data.ArrayBatches(x, None, 4)[0]
    assert xp.shape == (4, 32, 32, 3)
    with pytest.raises(IndexError):
        b[3]


def test_array_batches_shuffle_depends_on_seed_and_epoch_only():
    x = np.arange(20, dtype=np.uint8).reshape(20, 1, 1, 1)
    y = np.arange(20)

    def order(seed, epoch):
        b = data.ArrayBatches(x, y, 8, shuffle=True, seed=seed)
        b.set_epoch(epoch)
        return np.concatenate([b[i][1] for i in range(len(b))])

    e0, e1 = order(0, 0), order(0, 1)
    assert sorted(e0.tolist()) == list(range(20)) == sorted(e1.tolist())
    assert not np.array_equal(e0, e1)
    np.testing.assert_array_equal(e1, order(0, 1))  # a fresh object (a resumed run) agrees
    assert not np.array_equal(e0, order(1, 0))


@pytest.mark.parametrize("batch_size", [0, -3, 2.5, True])
def test_array_batches_rejects_bad_batch_size(batch_size):
    with pytest.raises(ValueError, match="batch_size"):
        data.ArrayBatches(np.zeros((4, 2, 2, 3), np.uint8), np.zeros(4), batch_size)


# --------------------------------------------------------------------------- real images


def test_real_cifar_jpegs_through_the_folder_loader(cifar_folder, tmp_path):
    # cifar_folder (conftest) skips cleanly where the shared copy is absent
    root = copy_cifar_subset(cifar_folder, tmp_path / "cifar", n_train=6, n_test=3)
    ds = data.load_dataset(root, val_size=10, split_seed=0)
    assert list(ds.class_names) == CIFAR10_CLASSES
    assert ds.x_train.shape == (50, 32, 32, 3) and ds.x_test.shape == (30, 32, 32, 3)
    assert np.bincount(ds.y_test).tolist() == [3] * 10
    assert 20 < ds.x_train.mean() < 235 and ds.x_train.std() > 20  # real photos, not blank


def test_write_npz_helper_is_learnable_data(tmp_path):
    # guards the protocol tests: labels must be visible in the pixels
    (x_tr, y_tr, _, _), _ = data.load_npz(write_npz(tmp_path / "s.npz", n_train=200))
    means = [x_tr[y_tr == k].mean() for k in range(10)]
    assert means == sorted(means)
