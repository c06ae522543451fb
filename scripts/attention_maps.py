"""`keras-attn attention-maps` from a checkout (keras_attn/cli/attention_maps.py)."""

import sys

from keras_attn.cli import main

if __name__ == "__main__":
    sys.exit(main(["attention-maps", *sys.argv[1:]]))
