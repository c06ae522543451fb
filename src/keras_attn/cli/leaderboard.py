"""Run the gate leaderboard: every gate beside its backbone without one, many seeds, one report.

    keras-attn leaderboard --gates all --backbones cnn,resnet20 --data cifar10 --runs 16
    keras-attn leaderboard --data cifar10,cifar100 --data-dir cifar10=~/cifar10-jpeg.tar.gz \\
        --data-dir cifar100=~/cifar100-folder --time-budget 2h
    keras-attn leaderboard --gates se,eca --set epochs=2 --set train_limit=5000 --shard 1/4
    keras-attn leaderboard --report-only --out results/leaderboard

Rerunning the same command resumes: finished runs are skipped, an interrupted run
continues from its last finished epoch. The work is `keras_attn.leaderboard`'s; the
backend is Keras' (``KERAS_BACKEND=jax keras-attn leaderboard ...`` on a GPU).
"""

from __future__ import annotations

import argparse
import json
import sys

from keras_attn.cli import arguments

__all__ = ["main"]


def _pair(flag, parse_value, metavar):
    def parse(text):
        key, sep, value = text.partition("=")
        if not sep or not key or not value:
            raise argparse.ArgumentTypeError(f"{flag} needs {metavar}, got {text!r}")
        return key, parse_value(value)

    return parse


def _json_or_text(value):
    try:
        return json.loads(value)
    except json.JSONDecodeError:
        return value


def _parser(prog):
    ap = argparse.ArgumentParser(
        prog=prog,
        description="Train every backbone without a gate and with each gate, on each data set "
        "and recipe, --runs seeds each, through the protocol (one protocol folder per setting "
        "under --out), and write leaderboard.md, leaderboard.csv and leaderboard.png: per "
        "setting the protocol's table, across settings per gate the interquartile mean of its "
        "gains with stratified bootstrap CIs, P(improvement), performance profiles, parameters "
        "and epoch time (docs/leaderboard.md).",
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    g = ap.add_argument_group("the grid")
    g.add_argument("--gates", default="all", help="comma-separated gate names, or 'all' (default)")
    g.add_argument(
        "--backbones",
        default="cnn,resnet20",
        help="comma-separated backbones (default cnn,resnet20)",
    )
    g.add_argument(
        "--data",
        default="cifar10",
        help="comma-separated data sets: cifar10, cifar100 (default cifar10), or names given a "
        "path with --data-dir",
    )
    g.add_argument("--recipe", default="study", help="comma-separated recipes (default study)")
    g.add_argument("--runs", type=int, default=16, help="runs (seeds) per model and setting")
    g.add_argument(
        "--data-dir",
        type=_pair("--data-dir", str, "NAME=PATH"),
        action="append",
        default=[],
        metavar="NAME=PATH",
        help="read data set NAME from PATH (an image folder, its .tar.gz, or an .npz) instead of "
        "tensorflow-datasets; repeatable",
    )
    g.add_argument(
        "--set",
        type=_pair("--set", _json_or_text, "KEY=VALUE"),
        action="append",
        default=[],
        metavar="KEY=VALUE",
        help="a protocol setting for every setting, VALUE as JSON, over the recipe's (e.g. "
        "--set epochs=2 --set train_limit=5000 --set download=true); repeatable",
    )
    r = ap.add_argument_group("execution")
    r.add_argument("--out", default="results/leaderboard", help="output folder")
    r.add_argument(
        "--time-budget",
        metavar="DURATION",
        help="start no run that would not finish within this time (seconds, or 8m, 2h, 1h30m), "
        "write the report of what is done and exit 0; rerun to continue",
    )
    r.add_argument(
        "--shard",
        help="train shard I/N of the runs (shards may share --out), or 'auto': the shard of this "
        "SLURM array task or Kubernetes Indexed Job pod",
    )
    r.add_argument("--weights", action="store_true", help="keep each run's best weights")
    r.add_argument(
        "--progress-every", type=float, default=60.0, help="seconds between in-epoch lines"
    )
    r.add_argument("--no-report", action="store_true", help="do not write the report")
    r.add_argument("--no-plot", action="store_true", help="do not write leaderboard.png")
    r.add_argument(
        "--report-only", action="store_true", help="only re-create the report from --out's records"
    )
    r.add_argument("--quiet", action="store_true", help="print only the report's file names")
    arguments.add_verbose_argument(ap)
    return ap


def main(argv=None, prog=None):
    """Run ``keras-attn leaderboard ARGS``; return the exit status.

    Args:
        argv: list of str, the arguments (default ``sys.argv[1:]``).
        prog: str, the program name usage lines show.

    Returns:
        int: 0 when done (or stopped by ``--time-budget``), 2 on a bad grid entry,
        setting or data (one line on stderr naming what is valid).

    Example:
    >>> main(["--gates", "sse", "--backbones", "cnn"])  # one line on stderr, exit status 2
    2
    """
    args = _parser(prog).parse_args(sys.argv[1:] if argv is None else argv)
    arguments.load_backend(args.verbose)
    log = (lambda line: None) if args.quiet else (lambda line: print(line, flush=True))
    from keras_attn import _files as files
    from keras_attn import leaderboard

    try:
        if not args.report_only:
            grid = leaderboard.expand_grid(
                args.gates,
                args.backbones,
                args.data,
                args.recipe,
                args.runs,
                data_dirs=dict(args.data_dir),
                settings=dict(args.set),
            )
            leaderboard.run_leaderboard(
                grid,
                args.out,
                shard=args.shard,
                time_budget=args.time_budget,
                log=log,
                progress_every=args.progress_every,
                save_weights=args.weights,
            )
        if args.no_report and not args.report_only:
            return 0
        paths = leaderboard.write_leaderboard(args.out, plot=not args.no_plot)
    except (FileNotFoundError, ValueError) as e:
        print(f"error: {e}", file=sys.stderr)
        return 2
    if not args.quiet:
        print(files.read_bytes(paths["markdown"]).decode())
    print("wrote: " + ", ".join(paths.values()))
    return 0
