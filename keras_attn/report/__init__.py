"""Tables, statistics, figures and a README block from protocol records (the study's Table 1).

Everything is made from the records alone (``OUT/records/...``, written by
`keras_attn.protocol`), so shards merged into one folder give one report:
``keras-attn report results/cifar10``. Records of different settings are
reported apart, never pooled. The statistics (confidence intervals, Welch's test, Holm's
correction) are `keras_attn.report.stats`.
"""

from keras_attn.report.masks import format_mask_table, summarize_masks
from keras_attn.report.plots import plot_learning_curves, plot_summary
from keras_attn.report.readme import readme_block, update_readme
from keras_attn.report.records import load_records
from keras_attn.report.summary import summarize
from keras_attn.report.tables import format_markdown
from keras_attn.report.write import write_report

__all__ = [
    "format_markdown",
    "format_mask_table",
    "load_records",
    "plot_learning_curves",
    "plot_summary",
    "readme_block",
    "summarize",
    "summarize_masks",
    "update_readme",
    "write_report",
]
