"""`keras-attn protocol` from a checkout: the same command (keras_attn/cli/protocol.py)."""

import sys

from keras_attn.cli import main

if __name__ == "__main__":
    sys.exit(main(["protocol", *sys.argv[1:]]))
