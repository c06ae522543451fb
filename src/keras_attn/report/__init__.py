"""Tables, statistics, figures and a README block from protocol records (the study's Table 1).

Everything is made from the records alone (``OUT/records/...``, written by
`keras_attn.protocol`), so shards merged into one folder give one report:
``keras-attn report results/cifar10``. Records of different settings are
reported apart, never pooled. The statistics (confidence intervals, Welch's test, Holm's
correction) are `keras_attn.report.stats`; the aggregates over several settings (IQM,
stratified bootstrap, performance profiles) are `keras_attn.report.aggregate`, and the gate
leaderboard's report made from them is `keras_attn.report.gate_table`.
"""

from keras_attn.report.aggregate import (
    average_probability_of_improvement,
    interquartile_mean,
    score_distribution,
    stratified_bootstrap,
)
from keras_attn.report.gate_table import (
    format_leaderboard,
    gate_name,
    performance_profiles,
    plot_performance_profiles,
    summarize_gates,
    write_gates_report,
)
from keras_attn.report.mask_table import format_mask_table, summarize_masks
from keras_attn.report.plots import plot_learning_curves, plot_summary
from keras_attn.report.reading import load_records
from keras_attn.report.readme import readme_block, update_readme
from keras_attn.report.summary import summarize
from keras_attn.report.tables import format_markdown, format_section
from keras_attn.report.write import write_report

__all__ = [
    "average_probability_of_improvement",
    "format_leaderboard",
    "format_markdown",
    "format_mask_table",
    "format_section",
    "gate_name",
    "interquartile_mean",
    "load_records",
    "performance_profiles",
    "plot_learning_curves",
    "plot_performance_profiles",
    "plot_summary",
    "readme_block",
    "score_distribution",
    "stratified_bootstrap",
    "summarize",
    "summarize_gates",
    "summarize_masks",
    "update_readme",
    "write_gates_report",
    "write_report",
]
