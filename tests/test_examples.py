"""The cluster files in examples/ call the command line with flags it accepts."""

import re
import shlex
import subprocess

import pytest
from data_helpers import REPO

EXAMPLES = REPO / "examples"


def _protocol_parser():
    import keras_attn
    from keras_attn.cli import protocol as command
    from keras_attn.protocol.settings import PRESETS

    return command.build_parser(PRESETS, list(keras_attn.list_models()))


def _flags(tokens):
    return [t for t in tokens if t.startswith("--")]


def _known(parser):
    return {s for a in parser._actions for s in a.option_strings}


def test_sbatch_script_is_valid_bash_and_uses_real_flags():
    path = EXAMPLES / "slurm" / "protocol.sbatch"
    subprocess.run(["bash", "-n", str(path)], check=True)
    text = path.read_text()
    command = re.search(r"srun keras-attn protocol(.*?)(?:\n\n|\Z)", text, re.S).group(1)
    tokens = shlex.split(command.replace("\\\n", " "))
    assert "--shard" in tokens and tokens[tokens.index("--shard") + 1] == "auto"
    unknown = set(_flags(tokens)) - _known(_protocol_parser())
    assert not unknown, unknown


def test_indexed_job_manifest_uses_real_flags_and_sets_the_count():
    text = (EXAMPLES / "kubernetes" / "protocol-indexed-job.yaml").read_text()
    assert re.search(r'command: \["keras-attn", "protocol"\]', text)
    args = re.search(r"args: \[(.*?)\]", text, re.S).group(1)
    tokens = [t.strip().strip('"') for t in args.split(",")]
    unknown = set(_flags(tokens)) - _known(_protocol_parser())
    assert not unknown, unknown
    completions = re.search(r"^\s*completions: (\d+)", text, re.M).group(1)
    count = re.search(r"name: JOB_COMPLETIONS\s*\n\s*value: \"(\d+)\"", text).group(1)
    assert completions == count


@pytest.mark.parametrize("name", ["protocol.sbatch"])
def test_examples_name_their_adaptations(name):
    assert "Adapt:" in (EXAMPLES / "slurm" / name).read_text()
