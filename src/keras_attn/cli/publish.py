"""Publish a trained model to share: one protocol run as a folder with its model card.

    keras-attn publish results/cifar10 --model cnn_eca                # -> saved_models/cnn_eca/
    keras-attn publish results/cifar10 --model cnn_eca --run median --dataset cifar10
    keras-attn publish results/cifar10 --model resnet20_eca --out shared/resnet20_eca

The folder holds Keras' files (config.json, metadata.json with the run's provenance,
model.weights.h5) and a README.md model card that the Hugging Face Hub reads; upload
it as it is. Load it with keras_attn.load_pretrained(FOLDER, an https address of it,
or hf://OWNER/NAME). See docs/pretrained.md.
"""

from __future__ import annotations

import argparse
import os
import sys

__all__ = ["main"]


def build_parser(prog=None):
    ap = argparse.ArgumentParser(
        prog=prog,
        description=__doc__.split("\n\n")[0],
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    ap.add_argument("results", help="a protocol results folder (e.g. results/cifar10)")
    ap.add_argument("--model", required=True, help="the model (variant) to publish")
    ap.add_argument(
        "--run",
        choices=("best", "median"),
        default="best",
        help="best: the highest validation accuracy (the protocol's best run); median: the "
        "run of median test accuracy (default: %(default)s)",
    )
    ap.add_argument("--out", help="the folder to write (default: saved_models/MODEL)")
    ap.add_argument("--settings-id", help="which settings, when the folder holds several")
    ap.add_argument(
        "--dataset", help="the dataset's name for the card, e.g. cifar10 (default: the data's)"
    )
    ap.add_argument("--overwrite", action="store_true", help="replace an existing folder")
    return ap


def main(argv=None, prog=None):
    """Run ``keras-attn publish RESULTS --model NAME``; return the exit status.

    Args:
        argv: list of str, the arguments (default ``sys.argv[1:]``).
        prog: str, the program name usage lines show.

    Returns:
        int: 0 when published, 2 on a bad folder, model, run or settings id.

    Example:
    >>> import tempfile
    >>> main([tempfile.mkdtemp(), "--model", "cnn_eca"])  # no records there: one line on stderr
    2
    """
    args = build_parser(prog).parse_args(argv)
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
    from keras_attn.pretrained import publish

    out = args.out or os.path.join("saved_models", args.model)
    try:
        meta = publish(
            args.results,
            args.model,
            out,
            run=args.run,
            settings_id=args.settings_id,
            dataset=args.dataset,
            overwrite=args.overwrite,
        )
    except (FileNotFoundError, ValueError, OSError) as err:
        print(f"error: {err}", file=sys.stderr)
        return 2
    variant = meta["variant"]
    low, high = variant["ci95"]
    interval = f", 95 % CI {100 * low:.2f}-{100 * high:.2f} %" if low is not None else ""
    print(
        f"published {meta['model']} run {meta['run']} (seed {meta['seed']}; chosen for "
        f"{meta['chosen_by']}): "
        f"test accuracy {100 * meta['test_accuracy']:.2f} %; the variant's mean "
        f"{100 * variant['mean']:.2f} % over {variant['n']} runs{interval} -> {out}/"
    )
    print(f"load it: keras_attn.load_pretrained({out!r})")
    print(f"weights SHA-256: {meta['weights_sha256']}")
    return 0
