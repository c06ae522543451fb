"""A results block for a Markdown file (the README), made from the records alone.

The block replaces what lies between two marker comments and is the same,
byte for byte, whenever it is made again from the same records: it holds no
date and nothing the records do not.
"""

from __future__ import annotations

from keras_attn import _files as files
from keras_attn.report import _context
from keras_attn.report._format import ci_text, is_missing, p_text, params_text, pct
from keras_attn.report.reading import group_records
from keras_attn.report.summary import summarize
from keras_attn.report.tables import survivors_text

__all__ = ["BEGIN_MARKER", "END_MARKER", "readme_block", "replace_block", "update_readme"]

BEGIN_MARKER = "<!-- results:begin -->"
END_MARKER = "<!-- results:end -->"


def _registered():
    try:
        import keras_attn

        return list(keras_attn.list_models())
    except Exception:  # pragma: no cover - the block also works without the zoo
        return []


def _table(group):
    base = group[0]["baseline"]
    lines = [
        f"| variant | n | mean | std | 95% CI | trainable params | diff vs `{base}` "
        "| diff 95% CI | p (Holm) | P(improvement) |",
        "|---|---|---|---|---|---|---|---|---|---|",
    ]
    for r in group:
        if r["model"] == base:
            comparison = ["(baseline)", "", "", ""]
        else:
            comparison = [
                pct(r["diff_vs_baseline"], signed=True),
                ci_text(r["diff_ci95_low"], r["diff_ci95_high"], signed=True),
                p_text(r["p_holm"]),
                "n/a" if is_missing(r["prob_improvement"]) else f"{r['prob_improvement']:.2f}",
            ]
        cells = [
            f"`{r['model']}`",
            str(r["n"]),
            pct(r["mean"]),
            pct(r["std"]),
            ci_text(r["ci95_low"], r["ci95_high"]),
            params_text(r["trainable_params"]),
            *comparison,
        ]
        lines.append("| " + " | ".join(cells) + " |")
    return lines


def _limits(group, recs, registered):
    """What the numbers of one settings group do not show, as Markdown bullet lines."""
    base = group[0]["baseline"]
    lines = [
        "- A difference that does not survive Holm is not shown to be zero: its bootstrap CI "
        "is the range these runs leave open. With few runs the percentile bootstrap CI is "
        "somewhat too narrow; read it with the p-value.",
        "- One data set, split and set of training settings (above), no tuning per variant: "
        "the numbers say nothing about longer training, other learning rates or other data.",
    ]
    if base is None:
        lines.append("- No run of the baseline in these records: nothing is compared.")
    # Runs are not part of the settings id: a variant run with fewer (--runs 4) pools with
    # the others, and the most any variant of these settings was run for is the plan.
    planned = max(r["planned_runs"] for r in group)
    short = [f"`{r['model']}` {r['runs']}/{planned}" for r in group if r["runs"] < planned]
    if short:
        lines.append(f"- Runs present / planned: {', '.join(short)}.")
    diverged = [f"`{r['model']}` {r['diverged']}" for r in group if r["diverged"]]
    if diverged:
        lines.append(
            f"- Diverged runs (counted in n if they had a finite epoch): {', '.join(diverged)}."
        )
    if any(r["model"] == "cnn3" for r in group):
        lines.append(
            "- `cnn3` is the real three-block network, not the study's 'deeper CNN' (whose "
            "results were those of the two-block network): do not compare it with that row."
        )
    # The baseline's family only (``cnn*`` for ``cnn``): the ResNets are not the study's.
    family = [m for m in registered if m.startswith(group[0]["baseline"])]
    missing = [m for m in family if m not in {r["model"] for r in group}]
    if missing:
        names = ", ".join(f"`{m}`" for m in missing)
        lines.append(f"- Registered variants with no runs yet in these settings: {names}.")
    return lines


def readme_block(records, baseline="cnn", source=None):
    """The results block: a table per settings group, its data, machines, settings and limits.

    Per variant: n, mean, std and 95% CI of test accuracy, trainable params,
    the difference to ``baseline`` with its bootstrap 95% CI, Holm-adjusted
    Welch p and probability of improvement (`summarize`); then the data, the
    machines, the training settings, and what the numbers do and do not show.

    Args:
        records: record dicts (from `load_records`).
        baseline: the model the others are compared with.
        source: the records' folder as the reader should see it (named in the
            block's first line), or ``None``.

    Returns:
        Markdown text ending in a newline, without the markers.

    Example:
    >>> recs = [{"settings_id": "s", "model": "cnn", "run": i, "test_accuracy": a}
    ...         for i, a in enumerate((0.70, 0.72))]
    >>> print(readme_block(recs).splitlines()[6])
    | `cnn` | 2 | 71.00 | 1.41 | [58.29, 83.71] | n/a | (baseline) |  |  |  |
    """
    rows = summarize(records, baseline=baseline)
    registered = _registered()
    where = f" in `{source}`" if source else ""
    out = [
        f"<!-- Made from the records{where} by `keras-attn report --readme`; "
        "edits here are overwritten. -->",
    ]
    for sid, by_model in group_records(records).items():
        group = [r for r in rows if r["settings_id"] == sid]
        recs = [r for recs in by_model.values() for r in recs]
        n_text = ", ".join(f"`{r['model']}` {r['n']}" for r in group)
        out += [
            "",
            f"Test accuracy (%) of each run's best-validation epoch, settings `{sid}`. "
            f"Runs per variant (n): {n_text}.",
            "",
            *_table(group),
            "",
            f"- **Data**: {_context.data_text(recs)}.",
            f"- **Machines**: {_context.machines_text(recs)}.",
            f"- **Settings**: {_context.training_text(recs)}.",
            "- **Statistics**: mean, sample std and t-based 95% CI over the runs; difference of "
            "the means in percentage points with its percentile-bootstrap 95% CI; Welch's t-test "
            "p adjusted by Holm over the variants compared; P(improvement): the chance that a run "
            "of the variant beats a run of the baseline (Agarwal et al., 2021).",
        ]
        survivors = survivors_text(group)
        if survivors:
            out.append(f"- **What the numbers show**: {survivors}")
        out += [
            "- **What they do not show**:",
            *("  " + line for line in _limits(group, recs, registered)),
        ]
    return "\n".join(out) + "\n"


def _span(text, begin, end):
    """Where the block between the markers starts and stops in ``text``."""
    counts = {m: text.count(m) for m in (begin, end)}
    if counts[begin] != 1 or counts[end] != 1:
        found = ", ".join(f"{m} {n} times" for m, n in counts.items())
        raise ValueError(
            f"Expected each of the markers {begin} and {end} exactly once, on lines of their "
            f"own around the results, found {found}."
        )
    start, stop = text.index(begin) + len(begin), text.index(end)
    if stop < start:
        raise ValueError(f"The marker {end} comes before {begin}; put the results between them.")
    return start, stop


def replace_block(text, block, begin=BEGIN_MARKER, end=END_MARKER):
    """``text`` with what lies between the ``begin`` and ``end`` marker lines replaced by ``block``.

    Everything outside the markers, the markers included, stays as it was.

    Raises:
        ValueError: either marker missing or repeated, or ``end`` before ``begin``.

    Example:
    >>> text = "# Title\\n<!-- results:begin -->\\nold\\n<!-- results:end -->\\nrest\\n"
    >>> print(replace_block(text, "new table\\n"), end="")
    # Title
    <!-- results:begin -->
    new table
    <!-- results:end -->
    rest
    """
    start, stop = _span(text, begin, end)
    return text[:start] + "\n" + block.rstrip("\n") + "\n" + text[stop:]


def update_readme(path, records, baseline="cnn", source=None):
    """Rewrite the results block of the Markdown file ``path`` from ``records``.

    Args:
        path: a Markdown file with the `BEGIN_MARKER` and `END_MARKER` lines.
        records: record dicts (from `load_records`).
        baseline: the model the others are compared with.
        source: the records' folder as named in the block (see `readme_block`).

    Returns:
        Whether the file changed (``False`` when remade from the same records).

    Raises:
        FileNotFoundError: no file ``path``.
        ValueError: the file lacks the markers (see `replace_block`).

    Example:
    >>> import os, tempfile
    >>> path = os.path.join(tempfile.mkdtemp(), "README.md")
    >>> with open(path, "w") as f:
    ...     _ = f.write("Results:\\n<!-- results:begin -->\\n<!-- results:end -->\\n")
    >>> recs = [{"settings_id": "s", "model": "cnn", "run": 0, "test_accuracy": 0.7}]
    >>> update_readme(path, recs), update_readme(path, recs)
    (True, False)
    """
    path = str(path)
    if not files.exists(path):
        raise FileNotFoundError(f"Markdown file {path!r} does not exist.")
    old = files.read_bytes(path).decode("utf-8")
    try:
        _span(old, BEGIN_MARKER, END_MARKER)
    except ValueError as e:
        raise ValueError(f"{path}: {e}") from None
    new = replace_block(old, readme_block(records, baseline=baseline, source=source))
    if new == old:
        return False
    files.write_atomic(path, new.encode("utf-8"))
    return True
