"""The tables of docs/study.md the tests take their expected parameter counts from.

`variant_params()` is the variants table (name -> exact trainable count);
`gate_params()` the per-gate table (gate -> counts at sites 1-4 of ``cnn``). Both
read the page as it is, so the page and the tests cannot disagree.
"""

from pathlib import Path

STUDY = Path(__file__).resolve().parents[1] / "docs" / "study.md"


def markdown_table(after, path=STUDY):
    """(header, rows) of the first Markdown table after the line starting with ``after``.

    Cells are stripped strings; the separator row is left out.
    """
    lines = path.read_text().splitlines()
    starts = [i for i, line in enumerate(lines) if line.startswith(after)]
    if not starts:
        raise ValueError(f"{path.name} has no line starting with {after!r}")
    rows, i = [], starts[0] + 1
    while i < len(lines) and not lines[i].startswith("|"):
        i += 1
    while i < len(lines) and lines[i].startswith("|"):
        rows.append([cell.strip() for cell in lines[i].strip().strip("|").split("|")])
        i += 1
    if len(rows) < 3:
        raise ValueError(f"{path.name}: no table after {after!r}")
    return rows[0], rows[2:]


def _count(cell):
    return int(cell.replace(",", ""))


def variant_params():
    """``{variant: trainable params}`` from the variants table of docs/study.md."""
    header, rows = markdown_table("## The variants")
    assert header[0] == "name" and header[-1] == "trainable params", header
    return {row[0].strip("`"): _count(row[-1]) for row in rows}


def gate_params():
    """``{gate: [params at site 1, 2, 3, 4]}`` from the per-gate table of docs/study.md."""
    header, rows = markdown_table("Trainable parameters of one gate at each site")
    assert header[0] == "gate" and len(header) == 5, header
    return {row[0].strip("`"): [_count(c) for c in row[1:]] for row in rows}
