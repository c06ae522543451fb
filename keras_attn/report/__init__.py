"""Tables, statistics, figures and a README block from protocol records (the study's Table 1).

Everything is made from the records alone (``OUT/records/...``, written by
`keras_attn.protocol`), so shards merged into one folder give one report:
``keras-attn report results/cifar10``. Records of different settings are
reported apart, never pooled.
"""

from keras_attn.report.masks import MASK_FIELDS, format_mask_table, summarize_masks
from keras_attn.report.plots import plot_learning_curves, plot_summary
from keras_attn.report.readme import BEGIN_MARKER, END_MARKER, readme_block, update_readme
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
    "BEGIN_MARKER",
    "CNN3_NOTE",
    "CSV_FIELDS",
    "DIVERGED_NOTE",
    "END_MARKER",
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
    "readme_block",
    "summarize",
    "summarize_masks",
    "t_ci",
    "update_readme",
    "welch_p",
    "write_report",
]
