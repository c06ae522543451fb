"""`keras-attn export` from a checkout: the same command (keras_attn/cli/export.py)."""

import sys

from keras_attn.cli import main

if __name__ == "__main__":
    sys.exit(main(["export", *sys.argv[1:]]))
