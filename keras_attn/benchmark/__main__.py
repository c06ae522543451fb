"""Deprecated: ``python -m keras_attn.benchmark`` runs ``python scripts/benchmark.py``."""

import sys

if __name__ == "__main__":
    from keras_attn.benchmark.legacy import run_script

    sys.exit(run_script())
