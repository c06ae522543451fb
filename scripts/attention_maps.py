"""Draw where each attention block of an exported model looks, for one image.

    python scripts/attention_maps.py saved_models/cnn_conv_ae cat.png --out maps.png
    python scripts/attention_maps.py saved_models/cnn_cbam ship.jpg --scale fixed

Writes a PNG grid: one row per attention site, the (resized) image first, then
each block's mask at that site (mean over channels, upsampled to the image).
Needs the export's .keras file (a SavedModel has no layers to inspect). The image
is fitted to the model's input as in predict.py (--resize, default center-crop).
"""

from __future__ import annotations

import argparse
import os
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
if str(REPO) not in sys.path:  # run from a checkout without installing
    sys.path.insert(0, str(REPO))
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")


def build_parser():
    from keras_attn.attention_maps import SCALES
    from keras_attn.export import RESIZE_MODES

    ap = argparse.ArgumentParser(
        description=__doc__.split("\n\n")[0],
        epilog=__doc__.split("\n\n", 2)[2],
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    ap.add_argument("export", help="export folder or .keras file")
    ap.add_argument("image", help="an image file (PNG, JPEG, ...)")
    ap.add_argument("--out", help="PNG to write (default: <image name>_attention.png here)")
    ap.add_argument(
        "--resize",
        choices=RESIZE_MODES,
        default="crop",
        help="image of another size: center-crop then resize (default), stretch, or refuse",
    )
    ap.add_argument(
        "--scale",
        choices=SCALES,
        default="panel",
        help="panel: colours stretched per mask (default); fixed: one 0..1 scale",
    )
    ap.add_argument("--dpi", type=int, default=100, help="PNG resolution (default: %(default)s)")
    return ap


def main(argv=None):
    args = build_parser().parse_args(argv)
    from keras_attn import attention_maps, export

    out = Path(args.out) if args.out else Path(f"{Path(args.image).stem}_attention.png")
    try:
        model = export.load(args.export, format="keras")
        card = export.load_card(args.export) or {}
        images, notes = export.load_images([args.image], model.input_shape[1:], resize=args.resize)
        if notes[0]:
            print(f"note: {notes[0]}", file=sys.stderr)
        top = export.top_k(export.predict(model, images), card.get("class_names"), k=1)[0][0]
        title = f"{model.name} on {Path(args.image).name}: predicted {top[0]} ({top[1]:.2f})"
        result = attention_maps.plot_attention_maps(
            model, images[0], out, title=title, scale=args.scale, dpi=args.dpi
        )
    except (ValueError, FileNotFoundError, RuntimeError) as err:
        print(f"error: {err}", file=sys.stderr)
        return 2
    print(
        f"wrote {result['path']}: {len(result['maps'])} attention masks at "
        f"{result['rows']} site(s) ({title})"
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
