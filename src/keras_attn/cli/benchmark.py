"""Benchmark the variants: training and inference images/s, MACs, memory, cost vs arithmetic.

Examples::

    keras-attn benchmark                       # every variant, this backend
    keras-attn benchmark --models cnn,cnn_conv_ae --backend jax --jit --batch 128
    keras-attn benchmark --compare-jit         # graph vs XLA, side by side
    keras-attn benchmark --gates               # each gate alone, per site
    keras-attn benchmark --tiny                # smoke test (CI)

The measuring is done by `keras_attn.benchmark`; measurements are in docs/performance.md.
"""

from __future__ import annotations

import argparse
import os
import site
import subprocess
import sys
from pathlib import Path

from keras_attn.cli import arguments
from keras_attn.protocol.settings import POLICIES

__all__ = ["main"]


def _positive_int_arg(text):
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a positive integer, got {text!r}") from None
    if value < 1:
        raise argparse.ArgumentTypeError(f"expected a positive integer, got {text!r}")
    return value


def parse_args(argv=None, prog=None):
    """Parse the benchmark's command line (no Keras import: the backend is not fixed yet)."""
    p = argparse.ArgumentParser(
        prog=prog,
        description="Training and inference throughput, MACs and memory of keras_attn variants, "
        "measured side by side; prints a table and writes JSON.",
    )
    p.add_argument(
        "--models",
        default=None,
        help="comma-separated variants (default: all); cnn is always added as the baseline",
    )
    p.add_argument(
        "--backend",
        choices=arguments.BACKENDS,
        default=None,
        help="Keras backend (default: KERAS_BACKEND or tensorflow); the benchmark "
        "re-runs itself in a subprocess when Keras is already loaded with another",
    )
    jit = p.add_mutually_exclusive_group()
    jit.add_argument(
        "--jit",
        dest="jit",
        action="store_true",
        default=None,
        help="jit-compile steps (XLA); default: the fast path for this backend",
    )
    jit.add_argument("--no-jit", dest="jit", action="store_false", help="do not jit-compile")
    jit.add_argument(
        "--compare-jit",
        action="store_true",
        help="measure without and with jit compilation side by side",
    )
    p.set_defaults(jit=None)
    p.add_argument("--eager", action="store_true", help="run eagerly (op by op)")
    p.add_argument(
        "--precision",
        choices=tuple(POLICIES),
        default=None,
        help="build the models under Keras' mixed bfloat16 / float16 policy (default float32)",
    )
    p.add_argument(
        "--compare-precision",
        action="store_true",
        help="measure float32 and --precision (default bf16) side by side",
    )
    p.add_argument("--batch", type=_positive_int_arg, default=128, help="training batch (128)")
    p.add_argument(
        "--inference-batch",
        type=_positive_int_arg,
        default=None,
        help="inference batch (default: --batch)",
    )
    p.add_argument("--warmup", type=_positive_int_arg, default=2, help="warm-up steps (2)")
    p.add_argument("--windows", type=_positive_int_arg, default=5, help="timed windows (5)")
    p.add_argument("--steps", type=_positive_int_arg, default=3, help="steps per window (3)")
    p.add_argument(
        "--threads",
        type=_positive_int_arg,
        default=None,
        help="TensorFlow intra-op threads (default: TensorFlow's choice)",
    )
    p.add_argument(
        "--deterministic",
        action="store_true",
        help="enable TensorFlow op determinism, as the protocol does by default",
    )
    p.add_argument("--no-pipeline", action="store_true", help="skip the input-pipeline timing")
    p.add_argument("--no-fit-check", action="store_true", help="skip the model.fit epoch timing")
    p.add_argument(
        "--gates",
        action="store_true",
        help="instead of whole models, time each attention gate alone at each of its sites "
        "(one training step of a one-layer model), next to a 3x3 convolution of the same width",
    )
    p.add_argument(
        "--tiny",
        action="store_true",
        help="smoke-test configuration: cnn and cnn_eca, batch 4, one 1-step window",
    )
    p.add_argument(
        "--output",
        default="results/benchmark.json",
        help="JSON file to write (default results/benchmark.json)",
    )
    arguments.add_verbose_argument(p)
    args = p.parse_args(argv)
    if args.tiny:
        args.models = args.models or "cnn,cnn_eca"
        args.batch, args.warmup, args.windows, args.steps = 4, 1, 1, 1
    return args


def _settings_from_args(args):
    policy = POLICIES.get(args.precision)
    if args.compare_precision:
        policy = policy or POLICIES["bf16"]
        return [
            {"jit_compile": args.jit, "eager": args.eager, "mixed_precision": None},
            {"jit_compile": args.jit, "eager": args.eager, "mixed_precision": policy},
        ]
    if args.compare_jit:
        return [
            {"jit_compile": False, "eager": args.eager, "mixed_precision": policy},
            {"jit_compile": True, "eager": args.eager, "mixed_precision": policy},
        ]
    return [{"jit_compile": args.jit, "eager": args.eager, "mixed_precision": policy}]


def _rerun(argv, backend):
    """Run ``keras-attn benchmark ARGV`` in a fresh interpreter under ``backend``."""
    env = dict(os.environ, KERAS_BACKEND=backend)
    root = str(Path(__file__).resolve().parents[2])  # where this keras_attn is imported from
    if root not in site.getsitepackages():  # a checkout: the new interpreter finds it too
        env["PYTHONPATH"] = os.pathsep.join(p for p in (root, env.get("PYTHONPATH")) if p)
    return subprocess.call([sys.executable, "-m", "keras_attn", "benchmark", *argv], env=env)


def main(argv=None, prog=None):
    """Run the benchmark the command line asks for, print its table, write JSON; exit status.

    Args:
        argv: list of str, the arguments (default ``sys.argv[1:]``).
        prog: str, the program name usage lines show.

    Returns:
        int, 0 when measured and written.

    Example:
    >>> import os, tempfile
    >>> out = os.path.join(tempfile.mkdtemp(), "bench.json")
    >>> main(["--tiny", "--models", "cnn", "--no-fit-check", "--no-pipeline",
    ...       "--output", out])  # doctest: +ELLIPSIS
    backend ...
    JSON written to ...bench.json
    0
    """
    argv = list(sys.argv[1:] if argv is None else argv)
    args = parse_args(argv, prog)
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
    if args.backend and "keras" not in sys.modules:
        os.environ["KERAS_BACKEND"] = args.backend
    keras = arguments.load_backend(args.verbose)

    if args.backend and keras.backend.backend() != args.backend:
        return _rerun(argv, args.backend)  # Keras is loaded with another backend
    if keras.backend.backend() == "tensorflow":
        import tensorflow as tf

        # Every variant is a new model, so TensorFlow warns about "retracing" once per
        # variant: expected here, and noise in the benchmark's output.
        tf.get_logger().setLevel("ERROR")
    if args.threads or args.deterministic:
        if keras.backend.backend() != "tensorflow":
            raise SystemExit("--threads and --deterministic apply to the TensorFlow backend only.")
        import tensorflow as tf

        if args.threads:
            tf.config.threading.set_intra_op_parallelism_threads(args.threads)
        if args.deterministic:
            tf.config.experimental.enable_op_determinism()

    from keras_attn import benchmark
    from keras_attn.benchmark.gates import GATE_VARIANTS
    from keras_attn.benchmark.ratios import BASELINE
    from keras_attn.benchmark.table import format_table

    if args.gates:
        variants = GATE_VARIANTS if args.models is None else args.models.split(",")
        gates = benchmark.benchmark_gates(
            [v for v in variants if v != BASELINE],
            batch_size=args.batch,
            warmup_steps=args.warmup,
            windows=args.windows,
            steps_per_window=args.steps,
            jit_compile=_settings_from_args(args)[0]["jit_compile"],
            progress=lambda line: print(line, flush=True),
        )
        gates["command"] = ["keras-attn", "benchmark", *argv]
        benchmark.write_benchmark(gates, args.output)
        print(benchmark.format_gates(gates))
        print(f"JSON written to {args.output}")
        return 0
    result = benchmark.run_benchmark(
        args.models,
        batch_size=args.batch,
        settings=_settings_from_args(args),
        warmup_steps=args.warmup,
        windows=args.windows,
        steps_per_window=args.steps,
        inference_batch_size=args.inference_batch,
        pipeline=not args.no_pipeline,
        pipeline_images=512 if args.tiny else 45000,
        fit_check=not args.no_fit_check,
    )
    result["command"] = ["keras-attn", "benchmark", *argv]
    benchmark.write_benchmark(result, args.output)
    print(format_table(result))
    print(f"JSON written to {args.output}")
    return 0
