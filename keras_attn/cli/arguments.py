"""Command-line pieces the subcommands share, so a flag means one thing everywhere.

Subcommands stay thin: they build their parser from these pieces and print.
Nothing here imports Keras at module level (``keras-attn protocol`` picks the
backend before Keras is loaded).

- `add_data_arguments` / `data_settings`: the data flags of ``keras-attn protocol``
  and ``keras-attn tune`` (``--data-dir``, ``--dataset``, ``--tfds-dir``,
  ``--download``, ``--val-size``, ``--split-seed``, the limits, ``--cache-dir``)
  and the settings they give.
- `add_fast_path_arguments`: ``--jit`` / ``--no-jit`` and ``--mixed-precision``.
- `image_parser`, `add_resize_argument`, `load_export`: the export and image
  arguments of ``keras-attn predict`` and ``keras-attn attention-maps``, and the
  model with the image shape it takes.
"""

from __future__ import annotations

import argparse

__all__ = [
    "add_data_arguments",
    "add_fast_path_arguments",
    "add_resize_argument",
    "data_settings",
    "image_parser",
    "load_export",
]

#: The Keras backends ``--backend`` accepts.
BACKENDS = ("tensorflow", "jax", "torch")

#: Data flags copied into the settings when given: argparse dest -> settings key
#: (the names `keras_attn.protocol.ProtocolSettings` uses).
DATA_FLAG_KEYS = {
    "val_size": "val_size",
    "split_seed": "split_seed",
    "train_limit": "train_limit",
    "val_limit": "val_limit",
    "test_limit": "test_limit",
    "tfds_dir": "tfds_data_dir",
    "cache_dir": "cache_dir",
}


def add_data_arguments(parser, *, title="data", test_limit=True):
    """Add the data flags to ``parser`` in their own group; return the group.

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
    d = parser.add_argument_group(title)
    d.add_argument(
        "--data-dir",
        help="image folder (train/<class>/*, test/<class>/*), a .tar.gz / .zip of one, or an "
        ".npz file, instead of tensorflow-datasets",
    )
    d.add_argument("--dataset", help="tensorflow-datasets name (default cifar10)")
    d.add_argument("--tfds-dir", help="tensorflow-datasets data folder")
    d.add_argument(
        "--download",
        action="store_true",
        help="let tensorflow-datasets download missing data (never by default)",
    )
    d.add_argument("--val-size", type=int, help="validation images (study: 5000)")
    d.add_argument("--split-seed", type=int, help="seed of the train/val split (default 0)")
    d.add_argument("--train-limit", type=int, help="use only this many training images")
    d.add_argument("--val-limit", type=int, help="use only this many validation images")
    if test_limit:
        d.add_argument("--test-limit", type=int, help="use only this many test images")
    d.add_argument("--cache-dir", help="cache decoded image folders as .npz here")
    return d


def data_settings(args, parser):
    """The data settings the flags of `add_data_arguments` give: only the flags given.

    Keys are those of `keras_attn.protocol.ProtocolSettings`: ``data``
    (``--data-dir`` as given, or ``"tfds:<--dataset>"``), ``download`` (only
    when ``--download``), ``val_size``, ``split_seed``, ``train_limit``,
    ``val_limit``, ``test_limit``, ``tfds_data_dir`` and ``cache_dir``. Merge
    them over a preset's settings: a flag given wins.

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
    if args.data_dir and args.dataset:
        parser.error("give either --data-dir or --dataset, not both")
    settings = {}
    if args.data_dir:
        settings["data"] = args.data_dir
    elif args.dataset:
        settings["data"] = f"tfds:{args.dataset}"
    for flag, key in DATA_FLAG_KEYS.items():
        if getattr(args, flag, None) is not None:
            settings[key] = getattr(args, flag)
    if args.download:
        settings["download"] = True
    return settings


def add_fast_path_arguments(
    parser,
    *,
    mixed_precision_help="build the models under this dtype policy (default: float32); "
    "changes results",
):
    """Add ``--jit`` / ``--no-jit`` (dest ``jit``, default None) and ``--mixed-precision``.

    ``args.jit`` is None (the fast path, `keras_attn.training.fast_path`), True
    or False; ``args.mixed_precision`` is None (float32) or one of
    `keras_attn.training.MIXED_PRECISION_POLICIES`.

    Args:
        parser: an ``argparse.ArgumentParser`` or argument group.
        mixed_precision_help: str, the help of ``--mixed-precision`` (say what
            a different policy means for resuming).

    Example:
    >>> ap = argparse.ArgumentParser()
    >>> add_fast_path_arguments(ap)
    >>> args = ap.parse_args(["--no-jit"])
    >>> args.jit, args.mixed_precision
    (False, None)
    """
    from keras_attn.training import MIXED_PRECISION_POLICIES

    jit = parser.add_mutually_exclusive_group()
    jit.add_argument(
        "--jit",
        dest="jit",
        action="store_true",
        default=None,
        help="jit-compile training steps with XLA (default: on for JAX and TF GPU, "
        "off on TF CPU where it measured slower)",
    )
    jit.add_argument("--no-jit", dest="jit", action="store_false", help="do not jit-compile")
    parser.add_argument(
        "--mixed-precision", choices=MIXED_PRECISION_POLICIES, help=mixed_precision_help
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
