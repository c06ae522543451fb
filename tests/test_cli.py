"""The ``keras-attn`` command (keras_attn.cli) and the pieces its subcommands share.

- ``keras-attn --help`` lists every subcommand, and each one's ``--help`` exits 0;
- a wrong subcommand is a usage error naming the valid ones; importing the package
  and dispatching load no Keras before the subcommand runs, and the top-level names load
  on first use;
- scripts/*.py are wrappers of the same command;
- the shared pieces' examples run; the data flags are the ones ``protocol`` and
  ``tune`` have (names, defaults, help), and give the settings the protocol takes;
- ``predict`` and ``attention-maps`` build their image arguments from them.
"""

import argparse
import ast
import doctest
import importlib
import os
import subprocess
import sys

import pytest
from data_helpers import REPO

from keras_attn import cli
from keras_attn.cli import arguments as _cli


def _script(name):
    return importlib.import_module(f"keras_attn.cli.{name}")


def test_help_lists_every_subcommand(capsys):
    with pytest.raises(SystemExit) as exit_:
        cli.main(["--help"])
    assert exit_.value.code == 0
    out = capsys.readouterr().out
    assert out.startswith("usage: keras-attn ")
    for name, help in cli.COMMANDS.items():
        assert name in out and help.split()[0] in out
    assert set(cli.COMMANDS) == {
        "protocol", "tune", "export", "publish", "predict", "attention-maps", "report",
        "benchmark", "benchmark-trainers", "leaderboard",
    }  # fmt: skip


@pytest.mark.parametrize("command", sorted(cli.COMMANDS))
def test_every_subcommand_help_exits_0(command, capsys):
    with pytest.raises(SystemExit) as exit_:
        cli.main([command, "--help"])
    assert exit_.value.code == 0
    out = capsys.readouterr().out
    assert out.startswith(f"usage: keras-attn {command} "), out[:200]
    assert "scripts/" not in out and ".py" not in out.split("\n")[0]


def test_a_wrong_or_missing_subcommand_is_a_usage_error(capsys):
    for argv in (["tunee"], []):
        with pytest.raises(SystemExit) as exit_:
            cli.main(argv)
        assert exit_.value.code == 2
    err = capsys.readouterr().err
    assert "invalid choice: 'tunee'" in err and "attention-maps" in err
    assert "required: COMMAND" in err


def test_importing_the_package_and_its_help_load_no_keras():
    code = (
        "import sys, keras_attn, keras_attn.cli\n"
        "assert 'keras' not in sys.modules, 'import keras_attn loaded keras'\n"
        "try:\n    keras_attn.cli.main(['--help'])\nexcept SystemExit as e:\n"
        "    assert e.code == 0\n"
        "assert 'keras' not in sys.modules, 'keras-attn --help loaded keras'\n"
    )
    env = {"PYTHONPATH": str(REPO / "src"), "PATH": "/usr/bin:/bin"}
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, env=env)
    assert done.returncode == 0, done.stderr[-2000:]


def test_the_top_level_names_load_on_first_use(monkeypatch):
    """What `import keras_attn` leaves out comes from its module when first used."""
    import keras_attn

    monkeypatch.delitem(vars(keras_attn), "build")
    assert "build" in dir(keras_attn)
    assert keras_attn.build.__module__ == "keras_attn.zoo"  # keras_attn.__getattr__
    with pytest.raises(AttributeError, match="has no attribute 'biuld'"):
        keras_attn.biuld  # noqa: B018


@pytest.mark.parametrize("path", sorted((REPO / "scripts").glob("*.py")), ids=lambda p: p.name)
def test_scripts_are_wrappers_of_the_command(path):
    tree = ast.parse(path.read_text())
    calls = [n for n in ast.walk(tree) if isinstance(n, ast.Call)]
    main_call = [c for c in calls if getattr(c.func, "id", None) == "main"]
    (call,) = main_call
    command = path.stem.replace("_", "-")
    assert isinstance(call.args[0], ast.List) and call.args[0].elts[0].value == command
    assert command in cli.COMMANDS
    assert len(path.read_text().splitlines()) <= 10
    assert "sys.path" not in path.read_text()


def _group_actions(parser, title):
    (group,) = [g for g in parser._action_groups if g.title == title]
    return [
        (tuple(a.option_strings), a.dest, a.default, a.type, a.help, type(a).__name__)
        for a in group._group_actions
    ]


def test_examples_run():
    result = doctest.testmod(_cli, optionflags=doctest.ELLIPSIS | doctest.NORMALIZE_WHITESPACE)
    assert result.attempted > 0 and result.failed == 0


def test_data_flags_are_those_of_the_protocol_and_tune_commands():
    import keras_attn
    from keras_attn.protocol.settings import PRESETS
    from keras_attn.tuning.presets import PRESETS as TUNE_PRESETS
    from keras_attn.tuning.presets import TUNERS

    ours = argparse.ArgumentParser()
    _cli.add_data_arguments(ours)
    expected = _group_actions(ours, "data")
    assert [a[0] for a in expected] == [
        ("--data-dir",), ("--dataset",), ("--val-size",), ("--split-seed",),
        ("--train-limit",), ("--val-limit",), ("--test-limit",), ("--tfds-dir",),
        ("--download",), ("--cache-dir",),
    ]  # fmt: skip
    proto = _script("protocol").build_parser(PRESETS, list(keras_attn.list_models()))
    assert _group_actions(proto, "data") == expected
    tune = _script("tune").build_parser(TUNE_PRESETS, TUNERS)
    no_test_limit = [a for a in expected if a[0] != ("--test-limit",)]
    assert _group_actions(tune, "data (as in keras-attn protocol)") == no_test_limit


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


def test_image_commands_share_their_arguments(capsys):
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


def test_a_script_runs_as_the_command_does(tmp_path):
    """``python scripts/report.py ...`` in a checkout is ``keras-attn report ...``."""
    env = {"PYTHONPATH": str(REPO / "src"), "PATH": "/usr/bin:/bin"}
    done = subprocess.run(
        [sys.executable, str(REPO / "scripts" / "report.py"), str(tmp_path)],
        capture_output=True,
        text=True,
        env=env,
        cwd=tmp_path,
    )
    assert done.returncode == 2, done.stderr[-2000:]
    assert done.stderr.startswith(f"error: No records in '{tmp_path}'"), done.stderr
    assert "written by keras-attn protocol" in done.stderr


def test_a_clone_in_a_folder_named_keras_attn_does_not_shadow_the_package(tmp_path):
    """Python started beside a checkout named ``keras_attn/`` imports the installed package:
    the checkout keeps the package in src/, so the folder is at most a namespace portion,
    which a regular package found later on the path outranks."""
    clone = tmp_path / "keras_attn"
    (clone / "src").mkdir(parents=True)
    (clone / "README.md").write_text("a checkout\n")
    env = {k: v for k, v in os.environ.items() if k != "PYTHONPATH"}
    code = "import keras_attn; print(keras_attn.__version__, keras_attn.build.__name__)"
    done = subprocess.run(
        [sys.executable, "-c", code], cwd=tmp_path, capture_output=True, text=True, env=env
    )
    assert done.returncode == 0, done.stderr[-2000:]
    assert done.stdout.split() == ["0.1.0", "build"]
