"""`keras-attn benchmark` from a checkout: the same command (keras_attn/cli/benchmark.py)."""

import sys

from keras_attn.cli import main

if __name__ == "__main__":
    sys.exit(main(["benchmark", *sys.argv[1:]]))
