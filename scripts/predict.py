"""`keras-attn predict` from a checkout: the same command (keras_attn/cli/predict.py)."""

import sys

from keras_attn.cli import main

if __name__ == "__main__":
    sys.exit(main(["predict", *sys.argv[1:]]))
