"""`keras-attn tune` from a checkout: the same command (keras_attn/cli/tune.py)."""

import sys

from keras_attn.cli import main

if __name__ == "__main__":
    sys.exit(main(["tune", *sys.argv[1:]]))
