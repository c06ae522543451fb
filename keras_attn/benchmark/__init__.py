"""Speed of the variants against their arithmetic: whole models, gates alone, packed runs.

The command line is ``python scripts/benchmark.py``; measurements are in docs/performance.md.
The trainers side by side: ``python -m keras_attn.benchmark.trainers`` (its own module,
`keras_attn.benchmark.trainers`, not imported here so that it runs as ``-m``).
"""

import importlib
import warnings

from keras_attn.benchmark.gates import GATE_VARIANTS, benchmark_gates, format_gates
from keras_attn.benchmark.models import run_benchmark
from keras_attn.benchmark.packing import benchmark_packing, format_packing
from keras_attn.benchmark.pipeline import benchmark_pipeline, time_fit
from keras_attn.benchmark.probes import environment
from keras_attn.benchmark.ratios import BASELINE, DEFAULT_TARGET, add_ratios, project_protocol
from keras_attn.benchmark.table import format_table, write_json

__all__ = [
    "BASELINE",
    "DEFAULT_TARGET",
    "GATE_VARIANTS",
    "add_ratios",
    "benchmark_gates",
    "benchmark_packing",
    "benchmark_pipeline",
    "environment",
    "format_gates",
    "format_packing",
    "format_table",
    "project_protocol",
    "run_benchmark",
    "time_fit",
    "write_json",
]

# Deprecated names: other modules' functions this module used to re-export, and the
# command line, now scripts/benchmark.py.
_MOVED = {
    "compile_for_training": "keras_attn.training",
    "fast_path": "keras_attn.training",
    "device_description": "keras_attn.runtime",
}
_SCRIPT_NAMES = ("main", "parse_args")


def __getattr__(name):
    if name in _MOVED:
        warnings.warn(
            f"keras_attn.benchmark.{name} is deprecated: import it from {_MOVED[name]}.",
            DeprecationWarning,
            stacklevel=2,
        )
        return getattr(importlib.import_module(_MOVED[name]), name)
    if name in _SCRIPT_NAMES:
        from keras_attn.benchmark.legacy import script_attribute

        return script_attribute(name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
