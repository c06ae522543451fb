"""The Example sections of the docstrings run and print what they say.

Every module of the package is collected (no list to keep up to date). A public
function or class needs an example that runs: one marked ``# doctest: +SKIP``
is never executed, so it does not count.
"""

import doctest
import importlib
import pkgutil

import pytest

import keras_attn


def _modules():
    names = ["keras_attn"]
    for info in pkgutil.walk_packages(keras_attn.__path__, prefix="keras_attn."):
        names.append(info.name)
    return sorted(names)


MODULES = _modules()


@pytest.mark.parametrize("module", MODULES)
def test_docstring_examples_run(module):
    mod = importlib.import_module(module)
    result = doctest.testmod(mod, optionflags=doctest.ELLIPSIS | doctest.NORMALIZE_WHITESPACE)
    assert result.failed == 0


def _runs_an_example(doc):
    """True when ``doc`` has a doctest that is not skipped."""
    examples = doctest.DocTestParser().get_examples(doc or "")
    return any(not ex.options.get(doctest.SKIP) for ex in examples)


def test_every_public_function_has_an_example_that_runs():
    missing = []
    for module in MODULES:
        if module.rsplit(".", 1)[-1].startswith("_"):
            continue  # private helpers
        mod = importlib.import_module(module)
        for name in getattr(mod, "__all__", dir(mod)):
            obj = getattr(mod, name, None)
            if name.startswith("_") or getattr(obj, "__module__", None) != mod.__name__:
                continue
            if callable(obj) and not _runs_an_example(obj.__doc__):
                missing.append(f"{module}.{name}")
    assert not missing, f"no example that runs: {missing}"


def test_no_skipped_examples():
    skipped = []
    for module in MODULES:
        mod = importlib.import_module(module)
        for test in doctest.DocTestFinder().find(mod):
            if any(ex.options.get(doctest.SKIP) for ex in test.examples):
                skipped.append(test.name)
    assert not skipped, f"examples marked +SKIP (run them on tiny inputs or use prose): {skipped}"
