"""`keras-attn report` from a checkout: the same command (keras_attn/cli/report.py)."""

import sys

from keras_attn.cli import main

if __name__ == "__main__":
    sys.exit(main(["report", *sys.argv[1:]]))
