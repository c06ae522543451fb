"""The Example sections of the public docstrings run and print what they say."""

import doctest
import importlib

import pytest

MODULES = [
    "keras_attn.layers",
    "keras_attn.layers._gate",
    "keras_attn._files",
    "keras_attn.layers.eca",
    "keras_attn.layers.cbam",
    "keras_attn.layers.conv_ae",
    "keras_attn.layers.linear_ae",
    "keras_attn.backbone",
    "keras_attn.zoo",
    "keras_attn.export",
    "keras_attn.attention_maps",
    "keras_attn.tuning",
    "keras_attn.data",
    "keras_attn.protocol",
    "keras_attn.report",
    "keras_attn.training",
    "keras_attn.runtime",
    "keras_attn.benchmark",
]


@pytest.mark.parametrize("module", MODULES)
def test_docstring_examples(module):
    mod = importlib.import_module(module)
    result = doctest.testmod(mod, optionflags=doctest.ELLIPSIS | doctest.NORMALIZE_WHITESPACE)
    assert result.attempted > 0, f"{module} has no examples"
    assert result.failed == 0


def test_every_public_function_has_an_example():
    missing = []
    for module in MODULES:
        if module.rsplit(".", 1)[-1].startswith("_"):
            continue  # private helpers: their module docstring's example runs above
        mod = importlib.import_module(module)
        for name in getattr(mod, "__all__", dir(mod)):
            obj = getattr(mod, name)
            if name.startswith("_") or getattr(obj, "__module__", None) != mod.__name__:
                continue
            if callable(obj) and "Example" not in (obj.__doc__ or ""):
                missing.append(f"{module}.{name}")
    assert not missing, missing
