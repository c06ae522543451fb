"""Re-create the protocol report (Markdown, CSV, PNG) from the records alone.

    keras-attn report results/cifar10
    keras-attn report results/cifar10 --readme README.md
    keras-attn report results/protocol --baseline cnn_eca --no-plot

Works on any folder of records, e.g. the union of several shards' output.
"""

from __future__ import annotations

import argparse
import sys

__all__ = ["main"]


def main(argv=None, prog=None):
    """Run ``keras-attn report OUT``; write the report files; return the exit status.

    Args:
        argv: list of str, the arguments (default ``sys.argv[1:]``).
        prog: str, the program name usage lines show.

    Returns:
        int: 0 when written, 2 when there are no records (or bad ones).

    Example:
    >>> import tempfile
    >>> main([tempfile.mkdtemp()])  # no records there: one line on stderr
    2
    """
    ap = argparse.ArgumentParser(
        prog=prog,
        description="Write report.md, report.csv, runs.csv, results.jsonl, report.png and "
        "learning_curves.png into OUT from OUT/records (written by keras-attn protocol).",
    )
    ap.add_argument("out", help="protocol output folder (local or tf.io.gfile path)")
    ap.add_argument("--baseline", default="cnn", help="model to compare with (default cnn)")
    ap.add_argument("--no-plot", action="store_true", help="skip the PNG figures")
    ap.add_argument(
        "--readme",
        metavar="FILE.md",
        help="also rewrite the results block of this Markdown file, between the lines "
        "<!-- results:begin --> and <!-- results:end -->",
    )
    args = ap.parse_args(argv)

    from keras_attn import report

    try:
        records = report.load_records(args.out)
        paths = report.write_report(
            args.out, records, baseline=args.baseline, plot=not args.no_plot
        )
        if args.readme:
            changed = report.update_readme(args.readme, records, args.baseline, source=args.out)
    except (FileNotFoundError, ValueError) as e:
        print(f"error: {e}", file=sys.stderr)
        return 2
    print(report.format_markdown(report.summarize(records, args.baseline), records))
    print("wrote: " + ", ".join(paths.values()))
    if args.readme:
        print(f"{args.readme}: results block {'rewritten' if changed else 'unchanged'}")
    return 0
