"""Draw where each attention block of an exported model looks, for one image.

    python scripts/attention_maps.py saved_models/cnn_conv_ae cat.png --out maps.png
    python scripts/attention_maps.py saved_models/cnn_cbam ship.jpg --scale fixed
    python scripts/attention_maps.py saved_models/cnn_conv_ae cat.png --stats

Writes a PNG grid: one row per attention site, the (resized) image first, then
each block's mask at that site (mean over channels, upsampled to the image).
Needs the export's .keras file (a SavedModel has no layers to inspect). The image
is fitted to the model's input as in predict.py (--resize, default center-crop).
--stats also prints how much each mask varies on this image (mean, std, range,
spread over positions and over channels): a nearly constant mask does no
attention, however its stretched colours look. For many images, use
keras_attn.attention_maps.mask_statistics.
"""

from __future__ import annotations

import os
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
if str(REPO) not in sys.path:  # run from a checkout without installing
    sys.path.insert(0, str(REPO))
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")


def build_parser():
    from keras_attn._cli import add_resize_argument, image_parser
    from keras_attn.attention_maps import SCALES

    ap = image_parser(
        __doc__,
        export_help="export folder or .keras file",
        image_help="an image file (PNG, JPEG, ...)",
        many=False,
    )
    ap.add_argument("--out", help="PNG to write (default: <image name>_attention.png here)")
    add_resize_argument(ap, many=False)
    ap.add_argument(
        "--scale",
        choices=SCALES,
        default="panel",
        help="panel: colours stretched per mask (default); fixed: one 0..1 scale",
    )
    ap.add_argument("--dpi", type=int, default=100, help="PNG resolution (default: %(default)s)")
    ap.add_argument(
        "--stats", action="store_true", help="also print each mask's statistics on this image"
    )
    return ap


def main(argv=None):
    args = build_parser().parse_args(argv)
    from keras_attn import attention_maps, export
    from keras_attn._cli import load_export

    out = Path(args.out) if args.out else Path(f"{Path(args.image).stem}_attention.png")
    try:
        model, card, image_shape = load_export(args.export, format="keras")
        images, notes = export.load_images([args.image], image_shape, resize=args.resize)
        if notes[0]:
            print(f"note: {notes[0]}", file=sys.stderr)
        top = export.top_k(export.predict(model, images), card.get("class_names"), k=1)[0][0]
        title = f"{model.name} on {Path(args.image).name}: predicted {top[0]} ({top[1]:.2f})"
        result = attention_maps.plot_attention_maps(
            model, images[0], out, title=title, scale=args.scale, dpi=args.dpi
        )
        stats = attention_maps.mask_statistics(model, images[:1]) if args.stats else None
    except (ValueError, FileNotFoundError, RuntimeError) as err:
        print(f"error: {err}", file=sys.stderr)
        return 2
    print(
        f"wrote {result['path']}: {len(result['maps'])} attention masks at "
        f"{result['rows']} site(s) ({title})"
    )
    if stats:
        print(attention_maps.format_mask_statistics(stats))
    return 0


if __name__ == "__main__":
    sys.exit(main())
