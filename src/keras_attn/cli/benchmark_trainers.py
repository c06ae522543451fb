"""``keras-attn benchmark-trainers``: the protocol's trainers side by side, the GPU preflight.

    keras-attn benchmark-trainers --models cnn --groups 8,16 --grad-forms per_run,summed \\
        --epoch-forms scan,steps --precisions default,bf16 --jsonl rows.jsonl --deadline 300

The JAX trainer (run on the JAX backend: ``KERAS_BACKEND=jax``) in each form, and
``model.fit``, in one run; each row is printed and appended to ``--jsonl`` as it is
measured. The measuring is `keras_attn.benchmark.trainers`.
"""

from __future__ import annotations

import sys

from keras_attn.cli import arguments


def _list(text, cast=str):
    return [None if v in ("default", "none") else cast(v) for v in text.split(",") if v]


def main(argv=None, prog=None):
    """Time the protocol's trainers side by side; print the table, ``--json PATH`` writes it.

    Args:
        argv: list of str, the arguments (default ``sys.argv[1:]``).
        prog: str, the program name usage lines show.

    Returns:
        int, 0 when measured.

    Example:
        >>> main(["--help"])  # doctest: +ELLIPSIS
        Traceback (most recent call last):
        ...
        SystemExit: 0
    """
    import argparse
    import json

    ap = argparse.ArgumentParser(
        prog=prog,
        description="The protocol's trainers side by side: the JAX trainer in each form "
        "(group size, gradient form, epoch form, precision) and model.fit.",
    )
    ap.add_argument("--models", default="cnn", help="comma-separated variants (default cnn)")
    ap.add_argument("--groups", default="1,16", help="JAX trainer group sizes (default 1,16)")
    ap.add_argument(
        "--grad-forms", default="default", help="per_run and/or summed (default: the device's)"
    )
    ap.add_argument(
        "--epoch-forms", default="default", help="scan and/or steps (default: the device's)"
    )
    ap.add_argument(
        "--precisions", default="default", help="e.g. default,float32,tf32,bf16 (default: default)"
    )
    ap.add_argument("--trainers", default="jax,fit", help="jax and/or fit (default both)")
    ap.add_argument("--images", type=int, default=2048, help="training images per run and epoch")
    ap.add_argument("--batch-size", type=int, default=128)
    ap.add_argument("--epochs", type=int, default=2, help="timed epochs after the compiling one")
    ap.add_argument("--override", action="append", default=[], metavar="KEY=JSON",
                    help="model config override")  # fmt: skip
    ap.add_argument(
        "--setting",
        action="append",
        default=[],
        metavar="KEY=JSON",
        help="protocol setting for every row, e.g. augmentation='\"flip_crop\"'",
    )
    ap.add_argument("--study-models", help="models of the projected study (default: --models)")
    ap.add_argument("--json", help="write the whole result here at the end")
    ap.add_argument("--jsonl", help="append each row here as one JSON line when measured")
    ap.add_argument(
        "--deadline",
        type=float,
        metavar="SECONDS",
        help="start no row that the longest row so far says would end after this",
    )
    arguments.add_verbose_argument(ap)
    args = ap.parse_args(sys.argv[1:] if argv is None else argv)
    arguments.load_backend(args.verbose)
    from keras_attn.benchmark.trainers import benchmark_trainers

    overrides = {k: json.loads(v) for k, v in (o.split("=", 1) for o in args.override)}
    study_macs = None
    if args.study_models:
        from keras_attn import zoo
        from keras_attn.flops import count_macs

        shape = overrides.get("input_shape", [32, 32, 3])
        rest = {k: v for k, v in overrides.items() if k != "input_shape"}
        study_macs = {
            m: count_macs(zoo.build(m, input_shape=shape, **rest)) for m in _list(args.study_models)
        }
    print(f"{args.images} images/run, batch {args.batch_size}", flush=True)
    result = benchmark_trainers(
        _list(args.models),
        groups=_list(args.groups, int),
        grad_forms=_list(args.grad_forms),
        epoch_forms=_list(args.epoch_forms),
        precisions=_list(args.precisions),
        trainers=_list(args.trainers),
        images=args.images,
        batch_size=args.batch_size,
        epochs=args.epochs,
        overrides=overrides,
        study_macs=study_macs,
        jsonl=args.jsonl,
        deadline=args.deadline,
        settings={k: json.loads(v) for k, v in (o.split("=", 1) for o in args.setting)},
    )
    env = result["environment"]
    print(f"{env['backend']} on {env['device']}: {len(result['rows'])} row(s)", flush=True)
    if args.json:
        with open(args.json, "w") as f:
            json.dump(result, f, indent=1, default=str)
    return 0
