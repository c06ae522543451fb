"""Classify images with an exported model: top-k classes with probabilities.

    keras-attn predict saved_models/cnn_conv_ae cat.png ship.jpg
    keras-attn predict saved_models/cnn_conv_ae photos/*.jpg --top-k 3 --json

The export can be an export folder (its .keras file is used, else the first of its
SavedModel, ONNX and TFLite models), one of its files, or a SavedModel folder
(--format picks one in an export folder).
Images are decoded with Pillow (PNG, JPEG, ...) and converted to the model's
channels. An image of another size than the model's is, by default, center-cropped
to the model's aspect ratio and resized (a note says so); --resize stretch resizes
without cropping, --resize none refuses it. Class names come from model.json.
"""

from __future__ import annotations

import json
import os
import sys

from keras_attn.cli import arguments

__all__ = ["main"]


def build_parser(prog=None):
    from keras_attn.cli.arguments import add_resize_argument, image_parser
    from keras_attn.export.loading import LOAD_FORMATS

    ap = image_parser(
        __doc__,
        export_help="export folder, .keras/.onnx/.tflite file or SavedModel folder",
        image_help="image files (PNG, JPEG, ...)",
        many=True,
        prog=prog,
    )
    ap.add_argument(
        "--top-k", type=int, default=5, help="classes shown per image (default: %(default)s)"
    )
    add_resize_argument(ap, many=True)
    ap.add_argument(
        "--format",
        choices=LOAD_FORMATS,
        default="auto",
        help="artifact to use (default: %(default)s)",
    )
    ap.add_argument("--json", action="store_true", help="print one JSON object per image")
    arguments.add_verbose_argument(ap)
    return ap


def main(argv=None, prog=None):
    """Run ``keras-attn predict EXPORT IMAGE...``; return the exit status.

    Args:
        argv: list of str, the arguments (default ``sys.argv[1:]``).
        prog: str, the program name usage lines show.

    Returns:
        int: 0 when every image was classified, 1 when one could not be read,
        2 when the export could not be loaded.

    Example:
    >>> import os, tempfile, keras_attn
    >>> from PIL import Image
    >>> folder = tempfile.mkdtemp()
    >>> model = keras_attn.build("cnn", blocks=[4], dense_units=4, input_shape=(8, 8, 3))
    >>> model.save(os.path.join(folder, "tiny.keras"))
    >>> Image.new("RGB", (8, 8)).save(os.path.join(folder, "black.png"))
    >>> main([os.path.join(folder, "tiny.keras"), os.path.join(folder, "black.png"),
    ...       "--top-k", "1"])  # doctest: +ELLIPSIS
    /.../black.png
      1. 0  0...
    0
    """
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
    args = build_parser(prog).parse_args(argv)
    arguments.load_backend(args.verbose)
    from keras_attn import predict
    from keras_attn.cli.arguments import load_export

    try:
        if args.top_k < 1:
            raise ValueError(f"--top-k must be at least 1, got {args.top_k}.")
        model, card, image_shape = load_export(args.export, format=args.format)
        class_names = card.get("class_names")
    except (ValueError, FileNotFoundError, RuntimeError, ImportError) as err:
        print(f"error: {err}", file=sys.stderr)
        return 2

    failed = 0
    for path in args.images:
        try:
            images, notes = predict.load_images([path], image_shape, resize=args.resize)
        except (ValueError, FileNotFoundError) as err:
            print(f"error: {err}", file=sys.stderr)
            failed += 1
            continue
        probs = predict.predict(model, images)
        ranked = predict.top_k(probs, class_names, k=args.top_k)[0]
        if args.json:
            print(json.dumps({"image": path, "note": notes[0], "top_k": ranked}))
            continue
        print(path + (f"  ({notes[0].split('; ', 1)[1]})" if notes[0] else ""))
        width = max(len(name) for name, _ in ranked)
        for i, (name, p) in enumerate(ranked, start=1):
            print(f"  {i}. {name:<{width}}  {p:.4f}")
    return 1 if failed else 0
