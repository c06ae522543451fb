"""The benchmark's deprecated command-line entry points, which run scripts/benchmark.py.

``python -m keras_attn.benchmark`` and ``keras_attn.benchmark.main`` / ``parse_args``
still work: they load the script of a checkout (or an editable install) and warn.
"""

from __future__ import annotations

import functools
import importlib.util
import sys
import warnings
from pathlib import Path

__all__ = ["SCRIPT", "load_script", "run_script", "script_attribute"]

#: The benchmark's command line, in the checkout this package lives in.
SCRIPT = Path(__file__).resolve().parents[2] / "scripts" / "benchmark.py"

_NOTE = "is deprecated: run `python scripts/benchmark.py` (same arguments) instead."


@functools.lru_cache(maxsize=1)
def load_script():
    """scripts/benchmark.py as a module (``main``, ``parse_args``); loading imports no Keras.

    Example:
    >>> load_script().parse_args(["--tiny"]).batch
    4
    """
    if not SCRIPT.is_file():
        raise ImportError(
            f"The benchmark's command line is scripts/benchmark.py, not found at {SCRIPT}: "
            "keras_attn is installed without its scripts. Run the script from a checkout "
            "(or install one with `pip install -e`), or call keras_attn.benchmark.run_benchmark."
        )
    spec = importlib.util.spec_from_file_location("keras_attn_benchmark_script", SCRIPT)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def script_attribute(name):
    """``main`` or ``parse_args`` of the script, with a DeprecationWarning.

    Example:
    >>> import warnings
    >>> with warnings.catch_warnings(record=True) as caught:
    ...     warnings.simplefilter("always")
    ...     parse = script_attribute("parse_args")
    >>> parse(["--gates"]).gates, caught[0].category.__name__
    (True, 'DeprecationWarning')
    """
    warnings.warn(f"keras_attn.benchmark.{name} {_NOTE}", DeprecationWarning, stacklevel=3)
    return getattr(load_script(), name)


def run_script(argv=None):
    """Run the script's ``main`` (``python -m keras_attn.benchmark``); say it is deprecated.

    Args:
        argv: list of str, the command-line arguments (default ``sys.argv[1:]``).

    Returns:
        int, the exit status.

    Example:
    >>> run_script(["--help"])  # doctest: +ELLIPSIS
    Traceback (most recent call last):
    ...
    SystemExit: 0
    """
    print(f"note: `python -m keras_attn.benchmark` {_NOTE}", file=sys.stderr, flush=True)
    return load_script().main(argv)
