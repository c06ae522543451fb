"""The layout table of docs/development.md, made from the package tree itself.

Each module of ``keras_attn/`` gets a row with the first paragraph of its docstring;
a sub-package's row is its ``__init__.py``'s. `tests/test_structure.py` checks that the
page holds exactly this table, so it cannot drift. After adding, moving or removing a
module (or changing a summary), remake it:

    python tests/layout_doc.py          # rewrites the block in docs/development.md
"""

import ast
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
PACKAGE = REPO / "src" / "keras_attn"
PAGE = REPO / "docs" / "development.md"
BEGIN = "<!-- layout:begin (made by `python tests/layout_doc.py`; do not edit by hand) -->"
END = "<!-- layout:end -->"


def summary(path):
    """The first paragraph of ``path``'s module docstring, on one line."""
    doc = ast.get_docstring(ast.parse(path.read_text()))
    if not doc:
        raise ValueError(f"{path.relative_to(REPO)} has no module docstring: say what it is")
    return " ".join(line.strip() for line in doc.split("\n\n")[0].splitlines())


def rows(folder=PACKAGE):
    """(path shown, summary) for ``folder``'s package and everything in it, depth first."""
    shown = folder.relative_to(REPO).as_posix() + "/"
    out = [(shown, summary(folder / "__init__.py"))]
    for path in sorted(folder.iterdir()):
        if path.is_dir() and (path / "__init__.py").exists():
            out += rows(path)
        elif path.suffix == ".py" and path.name != "__init__.py":
            out.append((path.relative_to(REPO).as_posix(), summary(path)))
    return out


def table():
    """The Markdown table between the markers."""
    lines = ["| module | what it is |", "|---|---|"]
    lines += [f"| `{path}` | {text.replace('|', '/')} |" for path, text in rows()]
    return "\n".join(lines)


def page_with_table(text):
    """``text`` (the page) with the block between the markers replaced by `table`."""
    if text.count(BEGIN) != 1 or text.count(END) != 1:
        raise ValueError(f"{PAGE.name} needs one {BEGIN!r} and one {END!r} line")
    head, rest = text.split(BEGIN)
    _, tail = rest.split(END)
    return f"{head}{BEGIN}\n{table()}\n{END}{tail}"


if __name__ == "__main__":
    new = page_with_table(PAGE.read_text())
    changed = new != PAGE.read_text()
    PAGE.write_text(new)
    print(f"{PAGE.relative_to(REPO)}: layout {'rewritten' if changed else 'already up to date'}")
    sys.exit(0)
