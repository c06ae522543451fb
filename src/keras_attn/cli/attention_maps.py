"""Draw where a model looks in one image: Grad-CAM, and each attention gate as what it is.

    keras-attn attention-maps saved_models/cnn_conv_ae cat.png --out maps.png
    keras-attn attention-maps saved_models/cnn_cbam ship.jpg --class cat --scale fixed
    keras-attn attention-maps saved_models/cnn cat.png --layer block1_norm_b
    keras-attn attention-maps saved_models/cnn_conv_ae cat.png --stats

Writes a PNG. First row: the (resized) image, its Grad-CAM heatmap for a class
(--class, default the predicted one: red where the evidence for it lies) and the
heatmap over the image; every model has it, cnn included. Then one row per
attention block, one panel per site: a spatial gate's mask (CBAM's spatial part,
the autoencoder gates' mean over channels), a channel gate's weights as bars
(ECA, CBAM's channel part), or a line saying a constant gate is constant.
Needs the export's .keras file (a SavedModel has no layers to inspect). The image
is fitted to the model's input as by keras-attn predict (--resize, default center-crop).
--stats also prints how much each mask varies on this image (mean, std, range,
spread over positions and over channels): a nearly constant mask does no
attention, however its stretched colours look. For many images, use
keras_attn.attention_maps.mask_statistics.
"""

from __future__ import annotations

import os
import sys
from pathlib import Path

from keras_attn.cli import arguments

__all__ = ["main"]


def build_parser(prog=None):
    from keras_attn.attention_maps.figure import SCALES
    from keras_attn.cli.arguments import add_resize_argument, image_parser

    ap = image_parser(
        __doc__,
        export_help="export folder or .keras file",
        image_help="an image file (PNG, JPEG, ...)",
        many=False,
        prog=prog,
    )
    ap.add_argument("--out", help="PNG to write (default: <image name>_attention.png here)")
    add_resize_argument(ap, many=False)
    ap.add_argument(
        "--class",
        dest="class_",
        metavar="CLASS",
        help="the class Grad-CAM explains: a class name or index (default: the predicted one)",
    )
    ap.add_argument(
        "--layer",
        help="the layer Grad-CAM uses (default: the last conv block's output, block<N>_norm_b)",
    )
    ap.add_argument(
        "--scale",
        choices=SCALES,
        default="panel",
        help="panel: each gate's colours or bars stretched over its range (default); "
        "fixed: one 0..1 scale",
    )
    ap.add_argument("--dpi", type=int, default=100, help="PNG resolution (default: %(default)s)")
    ap.add_argument(
        "--stats", action="store_true", help="also print each mask's statistics on this image"
    )
    arguments.add_verbose_argument(ap)
    return ap


def main(argv=None, prog=None):
    """Run ``keras-attn attention-maps EXPORT IMAGE``; write the PNG; return the exit status.

    Args:
        argv: list of str, the arguments (default ``sys.argv[1:]``).
        prog: str, the program name usage lines show.

    Returns:
        int: 0 when the PNG is written, 2 when the export or image cannot be used.

    Example:
    >>> import os, tempfile, keras_attn
    >>> from PIL import Image
    >>> folder = tempfile.mkdtemp()
    >>> model = keras_attn.build("cnn_eca", blocks=[4], dense_units=4, input_shape=(8, 8, 3))
    >>> model.save(os.path.join(folder, "tiny.keras"))
    >>> Image.new("RGB", (8, 8)).save(os.path.join(folder, "black.png"))
    >>> main([os.path.join(folder, "tiny.keras"), os.path.join(folder, "black.png"),
    ...       "--out", os.path.join(folder, "maps.png")])  # doctest: +ELLIPSIS
    wrote /.../maps.png: ... attention masks at ... site(s), Grad-CAM of ... at block1_norm_b (...)
    0
    """
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
    args = build_parser(prog).parse_args(argv)
    arguments.load_backend(args.verbose)
    from keras_attn import attention_maps
    from keras_attn import predict as prediction
    from keras_attn.cli.arguments import load_export

    out = Path(args.out) if args.out else Path(f"{Path(args.image).stem}_attention.png")
    try:
        model, card, image_shape = load_export(args.export, format="keras")
        names = card.get("class_names")
        images, notes = prediction.load_images([args.image], image_shape, resize=args.resize)
        if notes[0]:
            print(f"note: {notes[0]}", file=sys.stderr)
        probabilities = prediction.predict(model, images)
        top = prediction.top_k(probabilities, names, k=1)[0][0]
        wanted = None
        if args.class_ is not None:
            wanted = attention_maps.class_index_of(args.class_, names, probabilities.shape[-1])
        title = f"{model.name} on {Path(args.image).name}: predicted {top[0]} ({top[1]:.2f})"
        result = attention_maps.plot_attention_maps(
            model,
            images[0],
            out,
            title=title,
            scale=args.scale,
            dpi=args.dpi,
            class_index=wanted,
            layer=args.layer,
            class_names=names,
        )
        has_masks = bool(result["maps"])
        stats = (
            attention_maps.mask_statistics(model, images[:1]) if args.stats and has_masks else None
        )
    except (ValueError, FileNotFoundError, RuntimeError) as err:
        print(f"error: {err}", file=sys.stderr)
        return 2
    explained = names[result["class_index"]] if names else f"class {result['class_index']}"
    sites = len({m["site"] for m in result["maps"]})
    masks = f"{len(result['maps'])} attention masks at {sites} site(s)"
    masks = masks if has_masks else "no attention blocks"
    print(
        f"wrote {result['path']}: {masks}, Grad-CAM of {explained} at {result['layer']} ({title})"
    )
    if args.stats and not has_masks:
        print(
            f"note: model {model.name!r} has no attention blocks: no mask statistics",
            file=sys.stderr,
        )
    if stats:
        print(attention_maps.format_mask_statistics(stats))
    return 0
