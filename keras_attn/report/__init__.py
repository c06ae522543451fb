"""Tables, statistics and figures from protocol records (the study's Table 1).

Everything is made from the records alone (``OUT/records/...``, written by
`keras_attn.protocol`), so shards merged into one folder give one report:
``python scripts/report.py results/cifar10``. Records of different settings are
reported apart, never pooled.
"""

from keras_attn.report.masks import MASK_FIELDS, format_mask_table, summarize_masks
from keras_attn.report.plots import plot_learning_curves, plot_summary
from keras_attn.report.records import load_records
from keras_attn.report.stats import (
    bootstrap_diff_ci,
    holm,
    probability_of_improvement,
    t_ci,
    welch_p,
)
from keras_attn.report.summary import CSV_FIELDS, summarize
from keras_attn.report.tables import CNN3_NOTE, DIVERGED_NOTE, RUN_FIELDS, format_markdown
from keras_attn.report.write import write_report

__all__ = [
    "CNN3_NOTE",
    "CSV_FIELDS",
    "DIVERGED_NOTE",
    "MASK_FIELDS",
    "RUN_FIELDS",
    "bootstrap_diff_ci",
    "format_markdown",
    "format_mask_table",
    "holm",
    "load_records",
    "plot_learning_curves",
    "plot_summary",
    "probability_of_improvement",
    "summarize",
    "summarize_masks",
    "t_ci",
    "welch_p",
    "write_report",
]
