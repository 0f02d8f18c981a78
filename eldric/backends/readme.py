"""README's backend table, generated from the one table (`python -m eldric.backends.readme`).

One line per kind: what `eldric backends` prints, in Markdown, between the two markers
below in README.md. tests/backends/test_table.py checks that README holds exactly what
this writes, so a row changed in presets.py or native/ without regenerating fails there.
"""

from __future__ import annotations

import sys
from pathlib import Path

from eldric.backends.table import BackendDef, rows

BEGIN = "<!-- backends:begin (python -m eldric.backends.readme) -->"
END = "<!-- backends:end -->"

HEADERS = ("kind", "what", "default URL", "auth", "streaming", "tools", "vision",
           "embeddings", "rerank", "tested")


def _yes(flag: bool | None) -> str:
    return "?" if flag is None else ("yes" if flag else "no")


def cells(row: BackendDef) -> list[str]:
    """A row as `eldric backends` and README show it (HEADERS' order)."""
    if not row.available:
        return [row.name, row.label, "not available", "-", "-", "-", "-", "-", "-",
                row.note or "no public server API"]
    return [row.name, row.label, row.url or "(given)", row.auth, _yes(row.streaming),
            row.tools, _yes(row.vision), _yes(row.embeddings), _yes(row.rerank),
            row.tested or "untested"]


def markdown() -> str:
    """The table, Markdown, between the markers (both included)."""
    lines = [BEGIN, "| " + " | ".join(HEADERS) + " |", "|" + "---|" * len(HEADERS)]
    for row in rows().values():
        c = cells(row)
        c[0] = f"`{c[0]}`"
        if row.available and row.url:
            c[2] = f"`{c[2]}`"
        if row.docs:
            c[1] = f"[{c[1]}]({row.docs})"
        lines.append("| " + " | ".join(x.replace("|", "\\|") for x in c) + " |")
    return "\n".join([*lines, END])


def replaced(text: str) -> str:
    """`text` (README) with the table between the markers made current. ValueError: the
    markers are missing."""
    start, end = text.find(BEGIN), text.find(END)
    if start < 0 or end < start:
        raise ValueError(f"README has no {BEGIN!r} … {END!r} block")
    return text[:start] + markdown() + text[end + len(END):]


def main(argv: list[str]) -> int:
    path = Path(argv[0] if argv else "README.md")
    text = path.read_text(encoding="utf-8")
    new = replaced(text)
    if new != text:
        path.write_text(new, encoding="utf-8")
        print(f"{path}: backend table written ({len(rows())} kinds)")
    else:
        print(f"{path}: backend table already current")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
