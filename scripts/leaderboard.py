"""`keras-attn leaderboard` from a checkout: the same command (keras_attn/cli/leaderboard.py)."""

import sys

from keras_attn.cli import main

if __name__ == "__main__":
    sys.exit(main(["leaderboard", *sys.argv[1:]]))
