"""Speed of the variants against their arithmetic: whole models, gates alone, the trainers.

The command line is ``keras-attn benchmark``; measurements are in docs/performance.md.
The models' table is `keras_attn.benchmark.table.format_table`; the machine's description
`keras_attn.benchmark.probes.benchmark_environment`.
The trainers side by side (the JAX trainer in each form, ``model.fit``):
`keras_attn.benchmark.trainers`, ``keras-attn benchmark-trainers``.
"""

from keras_attn.benchmark.gates import benchmark_gates, format_gates
from keras_attn.benchmark.pipeline import benchmark_pipeline, time_fit
from keras_attn.benchmark.ratios import project_protocol
from keras_attn.benchmark.table import write_benchmark
from keras_attn.benchmark.variants import run_benchmark

__all__ = [
    "benchmark_gates",
    "benchmark_pipeline",
    "format_gates",
    "project_protocol",
    "run_benchmark",
    "time_fit",
    "write_benchmark",
]
