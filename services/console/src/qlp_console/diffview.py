"""A unified diff as side-by-side rows, pure: what the project page shows."""

from __future__ import annotations

import re
from dataclasses import dataclass

_HUNK = re.compile(r"^@@ -(\d+)(?:,\d+)? \+(\d+)(?:,\d+)? @@(.*)$")


@dataclass(frozen=True)
class Row:
    kind: str  # "same", "changed", "removed", "added", "hunk"
    left_no: int | None
    left: str
    right_no: int | None
    right: str


def side_by_side(patch: str) -> list[Row]:
    """Pair removed and added lines of each change block; context lines on both sides."""
    rows: list[Row] = []
    left_no = right_no = 0
    removed: list[tuple[int, str]] = []
    added: list[tuple[int, str]] = []

    def flush() -> None:
        for i in range(max(len(removed), len(added))):
            lft = removed[i] if i < len(removed) else None
            rgt = added[i] if i < len(added) else None
            kind = "changed" if lft and rgt else "removed" if lft else "added"
            rows.append(
                Row(
                    kind,
                    lft[0] if lft else None,
                    lft[1] if lft else "",
                    rgt[0] if rgt else None,
                    rgt[1] if rgt else "",
                )
            )
        removed.clear()
        added.clear()

    for line in patch.splitlines():
        if line.startswith(("--- ", "+++ ")) and not removed and not added:
            continue
        m = _HUNK.match(line)
        if m:
            flush()
            left_no, right_no = int(m.group(1)), int(m.group(2))
            rows.append(Row("hunk", None, line, None, ""))
            continue
        if line.startswith("-"):
            removed.append((left_no, line[1:]))
            left_no += 1
        elif line.startswith("+"):
            added.append((right_no, line[1:]))
            right_no += 1
        elif line.startswith("\\"):
            continue
        else:
            flush()
            text = line[1:] if line.startswith(" ") else line
            rows.append(Row("same", left_no, text, right_no, text))
            left_no += 1
            right_no += 1
    flush()
    return rows
