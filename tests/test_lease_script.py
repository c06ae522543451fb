"""examples/gpu/lease.sh, read: valid bash, real protocol flags, registered models.

The script itself runs in tests/test_jax_only.py, in an environment like the lent
machine's.
"""

import re
import shlex
import subprocess

from data_helpers import REPO

SCRIPT = REPO / "examples" / "gpu" / "lease.sh"


def _study_tokens():
    text = SCRIPT.read_text()
    block = re.search(r"^study\(\) \{\n(.*?)^\}", text, re.S | re.M).group(1)
    return shlex.split(" ".join(re.findall(r"\(([^()]*)\)", block)).replace("\\\n", " "))


def test_the_script_is_valid_bash_with_real_flags_and_models():
    import keras_attn
    from keras_attn.cli import protocol as script
    from keras_attn.protocol.settings import PRESETS

    subprocess.run(["bash", "-n", str(SCRIPT)], check=True)
    parser = script.build_parser(PRESETS, list(keras_attn.list_models()))
    known = {s for a in parser._actions for s in a.option_strings}
    flags = {t for t in _study_tokens() if t.startswith("--")}
    assert {"--time-budget", "--compile-cache", "--no-weights"} <= flags and not flags - known
    models = re.findall(r"^MODELS=(?:\$MODELS,)?(\S+)$", SCRIPT.read_text(), re.M)
    names = ",".join(models).split(",")
    assert len(names) == 11 and set(names) <= set(keras_attn.list_models())
    assert set(keras_attn.zoo.STUDY_VARIANTS) <= set(names)
