"""The ``keras-attn`` command: one subcommand per workflow, each a module of this package.

    keras-attn protocol --preset smoke --download
    keras-attn tune --preset smoke
    keras-attn export results/smoke --model cnn_eca
    keras-attn publish results/smoke --model cnn_eca
    keras-attn predict saved_models/cnn_eca photo.jpg
    keras-attn attention-maps saved_models/cnn_eca photo.jpg --out where.png
    keras-attn report results/smoke
    keras-attn leaderboard --gates all --backbones cnn,resnet20 --data cifar10 --runs 16
    keras-attn benchmark --tiny

``python -m keras_attn ...`` is the same command. A subcommand's module is imported
only when it runs, and nothing here imports Keras: ``protocol --backend`` and
``export`` pick the Keras backend before it loads. Add a subcommand by writing a
module with ``main(argv, prog)`` and naming it in `COMMANDS`.
"""

from __future__ import annotations

import argparse
import importlib
import sys

__all__ = ["main"]

#: Subcommand -> one line for ``keras-attn --help``; the module is the name with "_" for "-".
COMMANDS = {
    "protocol": "train every model over many seeds, write records and the report (Table 1)",
    "tune": "KerasTuner search over the autoencoder gate's depth, widths and placement",
    "export": "export trained models: .keras, SavedModel, ONNX, TFLite and a model card",
    "publish": "publish one trained run as a folder to share, with a Hugging Face model card",
    "predict": "classify images with an exported model (top-k classes)",
    "attention-maps": "draw Grad-CAM and each attention gate's mask on one image",
    "report": "re-create the protocol's report from its records",
    "leaderboard": "every gate beside its backbone without one, on several data sets and "
    "recipes, many seeds: one report",
    "benchmark": "training and inference speed, MACs and memory of the variants",
    "benchmark-trainers": "the protocol's trainers side by side (the JAX trainer's forms, "
    "model.fit): the GPU preflight",
}


def _parser(prog):
    ap = argparse.ArgumentParser(
        prog=prog,
        description="Attention for image classification as a Keras 3 model zoo: the study's "
        "protocol, a KerasTuner search, export, prediction, attention maps, reports and "
        "benchmarks.",
        epilog=f"Run `{prog} COMMAND --help` for a command's options.",
    )
    from keras_attn import __version__

    ap.add_argument("--version", action="version", version=f"keras_attn {__version__}")
    sub = ap.add_subparsers(dest="command", metavar="COMMAND", required=True)
    for name, help in COMMANDS.items():
        sub.add_parser(name, help=help, add_help=False)
    return ap


def main(argv=None, prog="keras-attn"):
    """Run ``keras-attn COMMAND ARGS``; return the exit status.

    Args:
        argv: list of str, the command line after the program name (default
            ``sys.argv[1:]``): a subcommand of `COMMANDS` and its arguments.
        prog: str, the program name usage lines show.

    Returns:
        int, the exit status (``--help`` exits 0 through ``SystemExit``).

    Example:
    >>> main(["report", "--help"])  # doctest: +ELLIPSIS
    Traceback (most recent call last):
    ...
    SystemExit: 0
    """
    argv = list(sys.argv[1:] if argv is None else argv)
    args = _parser(prog).parse_args(argv[:1])  # usage errors and --help, nothing imported
    module = importlib.import_module(f"{__name__}.{args.command.replace('-', '_')}")
    return module.main(argv[1:], prog=f"{prog} {args.command}")
