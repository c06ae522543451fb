"""The command-line pieces the scripts share (keras_attn._cli).

- its examples run;
- the data flags are the ones scripts/protocol.py and scripts/tune.py have
  (names, defaults, help), and give the settings the protocol takes;
- predict.py and attention_maps.py build their image arguments from it.
"""

import argparse
import doctest
import importlib.util
import os

import pytest

from keras_attn import _cli

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def _script(name):
    path = os.path.join(REPO, "scripts", f"{name}.py")
    spec = importlib.util.spec_from_file_location(f"cli_test_{name}", path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def _group_actions(parser, title):
    (group,) = [g for g in parser._action_groups if g.title == title]
    return [
        (tuple(a.option_strings), a.dest, a.default, a.type, a.help, type(a).__name__)
        for a in group._group_actions
    ]


def test_examples_run():
    result = doctest.testmod(_cli, optionflags=doctest.ELLIPSIS | doctest.NORMALIZE_WHITESPACE)
    assert result.attempted > 0 and result.failed == 0


def test_data_flags_are_those_of_the_protocol_and_tune_scripts():
    import keras_attn
    from keras_attn.protocol.settings import PRESETS
    from keras_attn.tuning.settings import PRESETS as TUNE_PRESETS
    from keras_attn.tuning.settings import TUNERS

    ours = argparse.ArgumentParser()
    _cli.add_data_arguments(ours)
    expected = _group_actions(ours, "data")
    assert [a[0] for a in expected] == [
        ("--data-dir",), ("--dataset",), ("--tfds-dir",), ("--download",), ("--val-size",),
        ("--split-seed",), ("--train-limit",), ("--val-limit",), ("--test-limit",),
        ("--cache-dir",),
    ]  # fmt: skip
    proto = _script("protocol").build_parser(PRESETS, list(keras_attn.list_models()))
    assert _group_actions(proto, "data") == expected
    tune = _script("tune").build_parser(TUNE_PRESETS, TUNERS)
    no_test_limit = [a for a in expected if a[0] != ("--test-limit",)]
    assert _group_actions(tune, "data (as in scripts/protocol.py)") == no_test_limit


def test_data_settings(tmp_path):
    ap = argparse.ArgumentParser()
    _cli.add_data_arguments(ap)

    def settings(*argv, **kwargs):
        return _cli.data_settings(ap.parse_args(list(argv)), ap, **kwargs)

    assert settings() == {}
    assert settings("--data-dir", "d", "--val-limit", "5", "--download") == {
        "data": "d",
        "val_limit": 5,
        "download": True,
    }
    every = settings(
        "--dataset", "mnist", "--tfds-dir", "t", "--val-size", "0", "--split-seed", "3",
        "--train-limit", "1", "--val-limit", "2", "--test-limit", "4", "--cache-dir", "c",
    )  # fmt: skip
    assert every == {
        "data": "tfds:mnist",
        "tfds_data_dir": "t",
        "val_size": 0,
        "split_seed": 3,
        "train_limit": 1,
        "val_limit": 2,
        "test_limit": 4,
        "cache_dir": "c",
    }
    with pytest.raises(SystemExit):
        settings("--data-dir", "d", "--dataset", "mnist")


def test_image_scripts_share_their_arguments(capsys):
    predict = _script("predict").build_parser()
    args = predict.parse_args(["m", "a.png", "b.png", "--resize", "stretch"])
    assert (args.export, args.images, args.resize, args.format) == (
        "m",
        ["a.png", "b.png"],
        "stretch",
        "auto",
    )
    maps = _script("attention_maps").build_parser()
    args = maps.parse_args(["m", "a.png"])
    assert (args.export, args.image, args.resize) == ("m", "a.png", "crop")
    with pytest.raises(SystemExit):
        maps.parse_args(["m", "a.png", "b.png"])
    assert "unrecognized arguments: b.png" in capsys.readouterr().err
    assert "image of another size" in maps.format_help()
    assert "images of another size" in predict.format_help()
