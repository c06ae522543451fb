"""Export trained models: SavedModel + .keras + model.json card, one folder per model.

    python scripts/export.py results/ae --model cnn_conv_ae     # -> saved_models/cnn_conv_ae/
    python scripts/export.py results/ae --model cnn_conv_ae,cnn_eca --out-root exported
    python scripts/export.py my_model.keras --name my_model     # -> saved_models/my_model/

The first form asks the protocol (keras_attn.protocol) for the run of each model
with the best validation accuracy and exports its weights with its record. The
second exports any keras_attn .keras file, e.g. one trained on the JAX backend.
Export always runs on the TensorFlow backend (a SavedModel is a TensorFlow
artifact); .keras files are portable across backends. See saved_models/README.md.
"""

from __future__ import annotations

import argparse
import os
import sys
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
if str(REPO) not in sys.path:  # run from a checkout without installing
    sys.path.insert(0, str(REPO))

_BACKEND_NOTE = None
if os.environ.get("KERAS_BACKEND", "tensorflow") != "tensorflow":
    _BACKEND_NOTE = (
        f"note: KERAS_BACKEND={os.environ['KERAS_BACKEND']} ignored: export runs on TensorFlow "
        "(.keras files load on any backend)"
    )
os.environ["KERAS_BACKEND"] = "tensorflow"
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")


def build_parser():
    ap = argparse.ArgumentParser(
        description=__doc__.split("\n\n")[0],
        epilog="Layout of each export folder: model.keras, saved_model/, model.json "
        "(see saved_models/README.md).",
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    ap.add_argument("source", help="a protocol results folder (e.g. results/ae) or a .keras file")
    ap.add_argument(
        "--model",
        action="append",
        help="model(s) to export from a results folder: a name, comma-separated names, "
        "or the flag repeated",
    )
    ap.add_argument(
        "--name", help="export folder name for a .keras source (default: the model's name)"
    )
    ap.add_argument(
        "--out-root",
        default="saved_models",
        help="exports go to OUT_ROOT/<name> (default: %(default)s)",
    )
    ap.add_argument(
        "--class-names",
        help="comma-separated class names for a .keras source (a protocol record has its own)",
    )
    ap.add_argument(
        "--formats",
        default="keras,saved_model",
        help="artifacts to write, comma-separated (default: %(default)s)",
    )
    ap.add_argument("--overwrite", action="store_true", help="replace existing exports")
    ap.add_argument(
        "--no-verify",
        action="store_true",
        help="skip reloading each artifact to check its predictions (saves ~1 s per model)",
    )
    return ap


def _summary(card, folder, seconds):
    rec = card.get("record_summary") or {}
    parts = [f"{card['name']}: {card['trainable_params']:,} trainable parameters"]
    if rec:
        parts.append(
            f"run {rec.get('run')} (seed {rec.get('seed')}), val {rec.get('best_val_accuracy')}, "
            f"test {rec.get('test_accuracy')}"
        )
    return f"exported {', '.join(parts)} -> {folder}/ ({seconds:.1f}s)"


def main(argv=None):
    args = build_parser().parse_args(argv)
    if _BACKEND_NOTE:
        print(_BACKEND_NOTE, file=sys.stderr)
    from keras_attn import export

    formats = tuple(f.strip() for f in args.formats.split(",") if f.strip())
    common = {"formats": formats, "verify": not args.no_verify, "overwrite": args.overwrite}
    source = Path(args.source)
    try:
        if source.suffix == ".keras":
            if args.model:
                raise ValueError(
                    "--model selects runs of a results folder; for a .keras file use --name."
                )
            model = export.load(source, format="keras")
            name = args.name or model.name
            names = args.class_names.split(",") if args.class_names else None
            t0 = time.perf_counter()
            folder = Path(args.out_root) / name
            card = export.export_model(model, folder, class_names=names, **common)
            print(_summary(card, Path(args.out_root) / name, time.perf_counter() - t0))
            return 0
        if not args.model:
            raise ValueError(
                f"Say which model(s) of {source} to export: --model NAME "
                "(e.g. --model cnn_conv_ae)."
            )
        if args.class_names or args.name:
            raise ValueError(
                "--class-names and --name apply to a .keras source; a results folder's "
                "records carry the class names and exports are named after the model."
            )
        models = [m.strip() for spec in args.model for m in spec.split(",") if m.strip()]
        for model_name in models:
            t0 = time.perf_counter()
            card = export.export_best(source, model_name, out_root=args.out_root, **common)
            print(_summary(card, Path(args.out_root) / model_name, time.perf_counter() - t0))
    except (ValueError, OSError, RuntimeError) as err:  # NotImplementedError is a RuntimeError
        print(f"error: {err}", file=sys.stderr)
        return 2
    return 0


if __name__ == "__main__":
    sys.exit(main())
