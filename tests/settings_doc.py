"""The settings table of docs/protocol.md, made from `ProtocolSettings`' declarations.

Each setting's flag, default, whether it is part of the settings id and its help come
from where the setting is declared (`keras_attn._fields.setting`), so the page cannot
drift from the code; `tests/test_recipes.py` checks it. After a setting changes:

    python tests/settings_doc.py          # rewrites the block in docs/protocol.md
"""

import sys
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
PAGE = REPO / "docs" / "protocol.md"
BEGIN = "<!-- settings:begin (made by `python tests/settings_doc.py`; do not edit by hand) -->"
END = "<!-- settings:end -->"


def page_with_table(page):
    """``page`` with the block between the markers replaced by the current table."""
    from keras_attn._fields import markdown_table
    from keras_attn.protocol.settings import ProtocolSettings

    head, rest = page.split(BEGIN)
    _, tail = rest.split(END)
    return f"{head}{BEGIN}\n{markdown_table(ProtocolSettings)}\n{END}{tail}"


if __name__ == "__main__":
    sys.path.insert(0, str(REPO))
    old = PAGE.read_text()
    new = page_with_table(old)
    PAGE.write_text(new)
    print(f"{PAGE.relative_to(REPO)}: settings table {'rewritten' if new != old else 'unchanged'}")
