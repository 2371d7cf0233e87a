from __future__ import annotations

from qlp_console.diffview import Row, side_by_side

PATCH = """--- a/app.py
+++ b/app.py
@@ -1,4 +1,4 @@
 import os
-x = 1
+x = 2
+y = 3
 print(x)
-gone
"""


def test_changes_pair_up_side_by_side() -> None:
    rows = side_by_side(PATCH)
    assert rows[0].kind == "hunk"
    assert rows[1] == Row("same", 1, "import os", 1, "import os")
    assert rows[2] == Row("changed", 2, "x = 1", 2, "x = 2")
    assert rows[3] == Row("added", None, "", 3, "y = 3")
    assert rows[4] == Row("same", 3, "print(x)", 4, "print(x)")
    assert rows[5] == Row("removed", 4, "gone", None, "")


def test_an_added_file() -> None:
    rows = side_by_side("--- /dev/null\n+++ b/new.txt\n@@ -0,0 +1,2 @@\n+a\n+b\n")
    assert [r.kind for r in rows] == ["hunk", "added", "added"]
    assert [r.right_no for r in rows[1:]] == [1, 2]
