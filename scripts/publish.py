"""`keras-attn publish` from a checkout: the same command (keras_attn/cli/publish.py)."""

import sys

from keras_attn.cli import main

if __name__ == "__main__":
    sys.exit(main(["publish", *sys.argv[1:]]))
