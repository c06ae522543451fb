"""Command-line pieces the subcommands share, so a flag means one thing everywhere.

Subcommands stay thin: they build their parser from these pieces and print.
Nothing here imports Keras at module level: a command checks its arguments first,
then loads the backend (`load_backend`).

- `add_data_arguments` / `data_settings`: the data flags of ``keras-attn protocol``
  and ``keras-attn tune``, made from `keras_attn.data.DataSettings`' declarations,
  and the settings they give.
- `load_backend`: Keras (and TensorFlow where installed), its start-up log lines
  hidden unless ``--verbose``.
- `image_parser`, `add_resize_argument`, `load_export`: the export and image
  arguments of ``keras-attn predict`` and ``keras-attn attention-maps``, and the
  model with the image shape it takes.
"""

from __future__ import annotations

import argparse
import os
import re
import sys

from keras_attn import _fields

__all__ = [
    "add_data_arguments",
    "add_resize_argument",
    "data_settings",
    "image_parser",
    "load_backend",
    "load_export",
]

#: The Keras backends ``--backend`` accepts.
BACKENDS = ("tensorflow", "jax", "torch")

#: The data settings a search takes (it never looks at the test set).
SEARCH_DATA = ("val_size", "split_seed", "train_limit", "val_limit", "tfds_data_dir",
               "download", "cache_dir")  # fmt: skip

#: The start-up lines of TensorFlow's and XLA's native logging (before they read
#: TF_CPP_MIN_LOG_LEVEL), hidden unless a command has ``--verbose``.
_NOISE = re.compile(
    rb"absl::InitializeLog|\] oneDNN custom operations|cpu_feature_guard|To enable the "
    rb"following instructions|rebuild TensorFlow with the appropriate|Unable to register "
    rb"cu(DNN|FFT|BLAS) factory|computation placer already registered"
)


def add_data_arguments(parser, *, title="data", test_limit=True):
    """Add the data flags to ``parser`` in their own group; return the group.

    ``--data-dir PATH`` and ``--dataset NAME`` give the ``data`` setting; the other
    flags come from `keras_attn.data.DataSettings`' declarations.

    Args:
        parser: an ``argparse.ArgumentParser``.
        title: str, default ``"data"``; the group's title in ``--help``.
        test_limit: bool, default True; add ``--test-limit`` (a search never
            looks at the test set).

    Example:
    >>> ap = argparse.ArgumentParser()
    >>> _ = add_data_arguments(ap, test_limit=False)
    >>> ap.parse_args(["--dataset", "mnist", "--val-size", "100"]).val_size
    100
    """
    from keras_attn.data.sources import DataSettings

    d = parser.add_argument_group(title)
    d.add_argument(
        "--data-dir",
        help="image folder (train/<class>/*, test/<class>/*; PNG, JPEG, ...), a .tar.gz of "
        "one, or an .npz file, instead of tensorflow-datasets",
    )
    d.add_argument("--dataset", help="tensorflow-datasets name (default cifar10)")
    names = list(SEARCH_DATA)
    if test_limit:
        names.insert(names.index("val_limit") + 1, "test_limit")
    _fields.add_arguments(d, DataSettings, names)
    return d


def data_settings(args, parser):
    """The data settings the flags of `add_data_arguments` give: only the flags given.

    Keys are those of `keras_attn.data.DataSettings`: ``data`` (``--data-dir`` as
    given, or ``"tfds:<--dataset>"``) and every data flag given. Merge them over a
    preset's settings: a flag given wins.

    Args:
        args: the parsed ``argparse.Namespace``.
        parser: its parser; ``--data-dir`` with ``--dataset`` is a usage error.

    Returns:
        dict of settings.

    Example:
    >>> ap = argparse.ArgumentParser()
    >>> _ = add_data_arguments(ap)
    >>> data_settings(ap.parse_args(["--dataset", "mnist", "--tfds-dir", "/d"]), ap)
    {'data': 'tfds:mnist', 'tfds_data_dir': '/d'}
    """
    from keras_attn.data.sources import DataSettings

    if args.data_dir and args.dataset:
        parser.error("give either --data-dir or --dataset, not both")
    settings = {}
    if args.data_dir:
        settings["data"] = args.data_dir
    elif args.dataset:
        settings["data"] = f"tfds:{args.dataset}"
    names = [n for n in (*SEARCH_DATA, "test_limit") if hasattr(args, n)]
    settings.update(_fields.given(args, DataSettings, names))
    return settings


def load_backend(verbose=False):
    """Import Keras, and TensorFlow where it is installed; return the ``keras`` module.

    The backends' native start-up log lines (absl's, oneDNN's, the CPU feature
    notes) are held back and dropped unless ``verbose``; every other line printed
    while importing is passed on, and all of them when an import fails. TensorFlow
    is imported here even under another backend, since Keras imports it later for
    random seeds anyway, and would print its lines then.

    Example:
    >>> keras = load_backend()
    >>> keras.backend.backend() in BACKENDS
    True
    """
    import importlib.util
    import tempfile

    if verbose:
        import keras

        return keras
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")  # TensorFlow's later info and warnings
    sys.stderr.flush()
    saved, failed = os.dup(2), False
    with tempfile.TemporaryFile() as held:
        os.dup2(held.fileno(), 2)
        try:
            import keras

            if importlib.util.find_spec("tensorflow") is not None:
                import tensorflow  # noqa: F401
        except BaseException:
            failed = True
            raise
        finally:
            sys.stderr.flush()
            os.dup2(saved, 2)
            os.close(saved)
            held.seek(0)
            lines = held.read().splitlines(keepends=True)
            kept = lines if failed else [line for line in lines if not _NOISE.search(line)]
            os.write(2, b"".join(kept))
    try:
        from absl import logging as absl_logging  # tensorflow-datasets' warnings

        absl_logging.set_verbosity(absl_logging.ERROR)
    except ImportError:
        pass
    return keras


def add_verbose_argument(parser):
    """Add ``--verbose``: show the backends' start-up log lines (`load_backend`)."""
    parser.add_argument(
        "--verbose", action="store_true", help="show the backends' start-up log lines"
    )


def image_parser(doc, *, export_help, image_help, many, prog=None):
    """The parser of a subcommand that runs an exported model on images.

    Description and epilog come from the subcommand's docstring (its first
    paragraph; everything after its second). Positional arguments: ``export``
    and ``images`` (one or more) or ``image`` (exactly one).

    Args:
        doc: the subcommand module's ``__doc__``.
        export_help: str, the help of ``export``.
        image_help: str, the help of the image argument.
        many: bool; ``images`` (one or more) if True, else ``image``.
        prog: str or None, the program name usage lines show.

    Returns:
        An ``argparse.ArgumentParser``; add the subcommand's options to it.

    Example:
    >>> ap = image_parser("Run.\\n\\n    run.py m x.png\\n\\nMore.", export_help="model",
    ...                   image_help="an image", many=False)
    >>> ap.parse_args(["m", "x.png"]).image
    'x.png'
    """
    ap = argparse.ArgumentParser(
        prog=prog,
        description=doc.split("\n\n")[0],
        epilog=doc.split("\n\n", 2)[2],
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    ap.add_argument("export", help=export_help)
    if many:
        ap.add_argument("images", nargs="+", help=image_help)
    else:
        ap.add_argument("image", help=image_help)
    return ap


def add_resize_argument(parser, *, many):
    """Add ``--resize`` (`keras_attn.predict.RESIZE_MODES`, default ``"crop"``).

    Args:
        parser: an ``argparse.ArgumentParser``.
        many: bool; whether the help speaks of images or of one image.

    Example:
    >>> ap = argparse.ArgumentParser()
    >>> add_resize_argument(ap, many=True)
    >>> ap.parse_args([]).resize
    'crop'
    """
    from keras_attn.predict import RESIZE_MODES

    parser.add_argument(
        "--resize",
        choices=RESIZE_MODES,
        default="crop",
        help=f"{'images' if many else 'image'} of another size: center-crop then resize "
        "(default), stretch, or refuse",
    )


def load_export(path, format="auto"):
    """Load an export with its card, and the image shape the model takes.

    The shape comes from the model card when there is one, else from the
    model itself (`keras_attn.predict.image_shape`).

    Args:
        path: an export folder, one of its files, or a SavedModel folder.
        format: one of `keras_attn.export.loading.LOAD_FORMATS`, default ``"auto"``.

    Returns:
        ``(model, card, image_shape)``: ``card`` is ``{}`` when there is none;
        ``image_shape`` is ``(height, width, channels)``.

    Raises:
        ValueError, FileNotFoundError, RuntimeError, ImportError: from
        `keras_attn.export.load`.

    Example:
    >>> import os, tempfile, keras_attn
    >>> path = os.path.join(tempfile.mkdtemp(), "tiny.keras")
    >>> keras_attn.build("cnn", blocks=[4], dense_units=4, input_shape=(8, 8, 3)).save(path)
    >>> model, card, shape = load_export(path)
    >>> card, tuple(shape)
    ({}, (8, 8, 3))
    """
    from keras_attn import export
    from keras_attn.predict import image_shape

    model = export.load(path, format=format)
    card = export.load_card(path) or {}
    if card.get("input"):
        return model, card, card["input"]["shape"][1:]
    return model, card, image_shape(model)
