"""Export trained models: .keras, SavedModel, ONNX, TFLite + model.json card, one folder per model.

    keras-attn export results/ae --model cnn_conv_ae     # -> saved_models/cnn_conv_ae/
    keras-attn export results/ae --model cnn_conv_ae,cnn_eca --out-root exported
    keras-attn export my_model.keras --name my_model     # -> saved_models/my_model/
    keras-attn export results/ae --model cnn --formats keras,onnx

The first form asks the protocol (keras_attn.protocol.best_run) for the run of
each model with the best validation accuracy and exports its weights with its
record. The second exports any keras_attn .keras file, e.g. one trained on JAX.
Every format is written by Keras' own exporter and checked against the Keras
model (largest difference <= 1e-5, written to the card); ONNX and TFLite fall
back to tf2onnx / the TFLite converter on the SavedModel when Keras' exporter
fails that, and a format no converter writes faithfully stops the export with an
error naming it (nothing is written). SavedModel, ONNX and TFLite need
TensorFlow (the command runs on it when it is installed); without it, only .keras
is written, on the Keras backend at hand. See saved_models/README.md.
"""

from __future__ import annotations

import argparse
import importlib.util
import os
import sys
import time
from pathlib import Path

from keras_attn.cli import arguments

__all__ = ["main"]


def _installed(module):
    try:
        return importlib.util.find_spec(module) is not None
    except ImportError:
        return False


def _choose_backend():
    """Run on TensorFlow when it is installed; otherwise on the backend at hand.

    Sets ``KERAS_BACKEND`` (which counts until Keras is imported); returns the note
    to print, or None.
    """
    asked = os.environ.get("KERAS_BACKEND")
    if _installed("tensorflow"):
        os.environ["KERAS_BACKEND"] = "tensorflow"
        if asked and asked != "tensorflow":
            return (
                f"note: KERAS_BACKEND={asked} ignored: export runs on TensorFlow "
                "(.keras files load on any backend)"
            )
        return None
    if not asked:
        installed = [b for b in ("jax", "torch") if _installed(b)]
        os.environ["KERAS_BACKEND"] = installed[0] if installed else "jax"
    return (
        f"note: TensorFlow is not installed: running on {os.environ['KERAS_BACKEND']}, "
        "which writes .keras only (SavedModel, ONNX and TFLite need it: pip install tensorflow)"
    )


def build_parser(prog=None):
    ap = argparse.ArgumentParser(
        prog=prog,
        description=__doc__.split("\n\n")[0],
        epilog="Layout of each export folder: model.keras, saved_model/, model.onnx, "
        "model.tflite, model.json (see saved_models/README.md).",
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
        help="formats to write, comma-separated, of keras, saved_model, onnx, tflite "
        "(default: all that the installed packages allow)",
    )
    ap.add_argument("--overwrite", action="store_true", help="replace existing exports")
    ap.add_argument(
        "--no-verify",
        action="store_true",
        help="skip loading each format to check its predictions (a few seconds per model)",
    )
    arguments.add_verbose_argument(ap)
    return ap


def _summary(card, folder, seconds):
    rec = card.get("record_summary") or {}
    parts = [f"{card['name']}: {card['trainable_params']:,} trainable parameters"]
    if rec:
        parts.append(
            f"run {rec.get('run')} (seed {rec.get('seed')}), val {rec.get('best_val_accuracy')}, "
            f"test {rec.get('test_accuracy')}"
        )
    formats = ", ".join(card["files"])
    diffs = card.get("verified_max_abs_diff")
    checked = f"; largest difference to Keras {max(diffs.values()):.1e}" if diffs else ""
    fallbacks = "".join(
        f"; {fmt} by {card['converters'][fmt]}" for fmt in card.get("rejected_converters") or {}
    )
    return (
        f"exported {', '.join(parts)} -> {folder}/ [{formats}{checked}{fallbacks}] ({seconds:.1f}s)"
    )


def _formats(spec, export):
    """The formats to write: those asked for, or every available one (saying what is skipped)."""
    from keras_attn.export.formats import FORMATS

    if spec:
        return export.check_formats([f.strip() for f in spec.split(",") if f.strip()])
    for fmt in FORMATS:
        hint = export.install_hint(fmt)
        if hint:
            print(f"skipping {fmt}: {hint}", file=sys.stderr)
    return export.available_formats()


def _models_to_export(source, args, export):
    """The model names asked for; without --model, an error naming those that can be exported."""
    if args.class_names or args.name:
        raise ValueError(
            "--class-names and --name apply to a .keras source; a results folder's "
            "records carry the class names and exports are named after the model."
        )
    with_weights, without_weights = export.exportable_models(source)
    no_weights = ", ".join(without_weights)
    skipped = f" ({no_weights}: records without weights)" if without_weights else ""
    if args.model:
        names = [m.strip() for spec in args.model for m in spec.split(",") if m.strip()]
        unknown = [m for m in names if m not in with_weights + without_weights]
        if unknown:
            raise ValueError(
                f"No records of {', '.join(unknown)} in {source}. Models with weights there: "
                f"{', '.join(with_weights) or 'none'}{skipped}."
            )
        return names
    if not with_weights:
        raise ValueError(
            f"{source} has records of {no_weights} but none of their weights, so nothing there "
            "can be exported: the runs were trained with --no-weights, or the records were "
            "copied without their weights/ folder."
        )
    raise ValueError(
        f"Say which model(s) of {source} to export: --model NAME. Models with weights there: "
        f"{', '.join(with_weights)}{skipped} (e.g. --model {with_weights[0]})."
    )


def main(argv=None, prog=None):
    """Run ``keras-attn export ARGS``; return the exit status.

    Runs on TensorFlow when it is installed (when Keras is not imported yet),
    else on the backend at hand, which writes .keras only (a note says so).

    Args:
        argv: list of str, the arguments (default ``sys.argv[1:]``).
        prog: str, the program name usage lines show.

    Returns:
        int: 0 when exported, 2 on a bad source, format or missing package.

    Example:
    >>> main(["no_such_folder", "--formats", "kerass"])  # one line on stderr
    2
    """
    backend_note = _choose_backend()
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
    args = build_parser(prog).parse_args(argv)
    arguments.load_backend(args.verbose)
    if backend_note:
        print(backend_note, file=sys.stderr)
    from keras_attn import export

    source = Path(args.source)
    try:
        formats = _formats(args.formats, export)
        common = {"formats": formats, "verify": not args.no_verify, "overwrite": args.overwrite}
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
            print(_summary(card, folder, time.perf_counter() - t0))
            return 0
        for model_name in _models_to_export(source, args, export):
            t0 = time.perf_counter()
            card = export.export_best(source, model_name, out_root=args.out_root, **common)
            print(_summary(card, Path(args.out_root) / model_name, time.perf_counter() - t0))
    except (ValueError, OSError, RuntimeError, ImportError) as err:
        print(f"error: {err}", file=sys.stderr)
        return 2
    return 0
