"""Benchmark the variants: training and inference images/s, MACs, memory, cost vs arithmetic.

Examples::

    python scripts/benchmark.py                       # every variant, this backend
    python scripts/benchmark.py --models cnn,cnn_conv_ae,cnn_linear_ae \
        --backend jax --jit --batch 128
    python scripts/benchmark.py --compare-jit         # graph vs XLA, side by side
    python scripts/benchmark.py --tiny                # smoke test (CI)

Everything is in `keras_attn.benchmark`; this wrapper only sets the Keras backend
before Keras is imported (``--backend``) and calls its ``main``.
"""

import os
import sys


def _preset_backend(argv):
    """Set KERAS_BACKEND from ``--backend`` before anything imports Keras."""
    for i, arg in enumerate(argv):
        if arg == "--backend" and i + 1 < len(argv):
            os.environ["KERAS_BACKEND"] = argv[i + 1]
        elif arg.startswith("--backend="):
            os.environ["KERAS_BACKEND"] = arg.split("=", 1)[1]


if __name__ == "__main__":
    _preset_backend(sys.argv[1:])
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
    from keras_attn.benchmark import main

    sys.exit(main())
