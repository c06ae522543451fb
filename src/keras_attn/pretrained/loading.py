"""Load a published model: from a local folder, an https address (cached, hash-checked) or hf://."""

from __future__ import annotations

import hashlib
import importlib.util
import os

import keras

from keras_attn.pretrained.folder import CONFIG, METADATA, WEIGHTS, check_folder, read_metadata

__all__ = ["load_pretrained", "load_weights"]


def _register_classes():
    """Import what registers keras_attn's classes for deserialization (layers, both models)."""
    import keras_attn.layers  # noqa: F401
    import keras_attn.zoo  # noqa: F401


def _download(url, sha256, cache_dir):
    """A local copy of the published folder at ``url``: its files through ``keras.utils.get_file``.

    The two JSON files are fetched every time (they are small, and say which weights
    to expect); the weights are cached under ``cache_dir`` and checked against
    ``sha256``, else against the SHA-256 the metadata records.
    """
    base = url.rstrip("/")
    subdir = os.path.join("keras_attn", hashlib.sha256(base.encode()).hexdigest()[:16])
    if cache_dir is not None:  # get_file falls back to /tmp/.keras for a folder not there
        os.makedirs(cache_dir, exist_ok=True)

    def get(name, **kwargs):
        try:
            return keras.utils.get_file(
                fname=name,
                origin=f"{base}/{name}",
                cache_dir=cache_dir,
                cache_subdir=subdir,
                **kwargs,
            )
        except Exception as err:  # noqa: BLE001 - get_file raises plain Exception on HTTP errors
            text = " ".join(str(err).split())
            if "hash does not match" in text:
                raise ValueError(
                    f"{base}/{name} does not have the SHA-256 expected "
                    f"({kwargs.get('file_hash')}): the file is corrupt or another model's."
                ) from None
            raise ValueError(f"Could not download {base}/{name}: {text}") from None

    folder = os.path.dirname(get(METADATA, force_download=True))
    get(CONFIG, force_download=True)
    expected = sha256 or read_metadata(folder).get("weights_sha256")
    get(WEIGHTS, file_hash=expected, hash_algorithm="sha256")
    return folder


def _from_hub(source, sha256):
    if sha256 is not None:
        raise ValueError(
            "`sha256` is checked for folders and https addresses; an hf:// model is pinned by "
            "its repository instead."
        )
    if importlib.util.find_spec("huggingface_hub") is None:
        raise ImportError(f"Loading {source} needs huggingface_hub: pip install 'keras_attn[hf]'.")
    _register_classes()
    try:
        return keras.saving.load_model(source, compile=False)
    except (TypeError, ValueError) as err:
        first = str(err).strip().splitlines()[0] if str(err).strip() else type(err).__name__
        raise ValueError(f"Could not load {source}: {first}") from None


def load_pretrained(source, sha256=None, cache_dir=None):
    """A published keras_attn model (`keras_attn.pretrained.publish`), ready to predict.

    Args:
        source: str or path: a local folder; an ``https://`` (or ``http://``)
            address of such a folder (its files are fetched with
            ``keras.utils.get_file``, the weights kept in Keras' cache); or
            ``hf://owner/name``, a Hugging Face Hub repository (Keras' own Hub
            support; needs ``huggingface_hub``).
        sha256: str or None, the SHA-256 the weights file must have (the model
            card gives it). Without it, the one the folder's metadata records is
            checked.
        cache_dir: str or None, where downloads are kept (default ``~/.keras``).

    Returns:
        A ``keras.Model`` (uncompiled), with the published weights.

    Raises:
        ValueError: one line: no such folder, a missing file, a download that
            failed, a SHA-256 that differs, or a config of another package.
        ImportError: ``hf://`` without ``huggingface_hub``.

    Example:
    >>> import os, tempfile, numpy as np, keras, keras_attn
    >>> folder = os.path.join(tempfile.mkdtemp(), "tiny")
    >>> model = keras_attn.build("cnn_eca", blocks=[4], dense_units=4, input_shape=(8, 8, 3))
    >>> keras.saving.save_model(model, folder, zipped=False)
    >>> again = load_pretrained(folder)
    >>> x = np.zeros((1, 8, 8, 3), "float32")
    >>> again.name, bool(np.allclose(again(x), model(x)))
    ('cnn_eca', True)
    """
    source = os.fspath(source)
    if source.startswith("hf://"):
        return _from_hub(source, sha256)
    if source.startswith(("https://", "http://")):
        folder = _download(source, sha256, cache_dir)
    else:
        folder = source
    check_folder(folder, sha256)
    _register_classes()
    return keras.saving.load_model(folder, compile=False)


def _comparable(model):
    config = dict(model.get_config())
    config.pop("name", None)
    config.pop("trainable", None)
    return type(model).__name__, config


def load_weights(model, source, sha256=None, cache_dir=None):
    """Give ``model`` the weights of a published model of the same architecture and config.

    What ``keras_attn.build(name, weights=SOURCE)`` does.

    Args:
        model: a ``keras.Model`` (e.g. just built by `keras_attn.build`).
        source, sha256, cache_dir: as `load_pretrained`.

    Returns:
        ``model``.

    Raises:
        ValueError: the published model's class or config is not ``model``'s
            (the message names the keys that differ), or as `load_pretrained`.

    Example:
    >>> import os, tempfile, keras, keras_attn
    >>> folder = os.path.join(tempfile.mkdtemp(), "tiny")
    >>> trained = keras_attn.build("cnn_eca", blocks=[4], dense_units=4, input_shape=(8, 8, 3))
    >>> keras.saving.save_model(trained, folder, zipped=False)
    >>> fresh = keras_attn.build("cnn_eca", blocks=[4], dense_units=4, input_shape=(8, 8, 3))
    >>> load_weights(fresh, folder).get_weights()[0].tolist() == trained.get_weights()[0].tolist()
    True
    """
    published = load_pretrained(source, sha256=sha256, cache_dir=cache_dir)
    (theirs, their_config), (ours, our_config) = _comparable(published), _comparable(model)
    if theirs != ours or their_config != our_config:
        inner = their_config.get("config", their_config), our_config.get("config", our_config)
        keys = sorted(
            k for k in set(inner[0]) | set(inner[1]) if inner[0].get(k) != inner[1].get(k)
        )
        raise ValueError(
            f"The weights at {os.fspath(source)} are of a {theirs} {published.name!r} whose config "
            f"differs from this {ours} {model.name!r} in: {', '.join(keys) or 'its class'}. "
            "Build the published model's config, or load it whole with keras_attn.load_pretrained."
        )
    model.set_weights(published.get_weights())
    return model
