"""``python -m keras_attn ...``: the ``keras-attn`` command (`keras_attn.cli`)."""

import sys

if __name__ == "__main__":
    from keras_attn.cli import main

    sys.exit(main(prog="python -m keras_attn"))
