"""A malformed list cursor is the caller's mistake: a 422 problem wherever a route
leaves it uncaught, and still a ValueError for routes that map it themselves."""

from __future__ import annotations

import pytest

from qlp_kit.mongo import decode_cursor, encode_cursor
from qlp_kit.problems import Problem


@pytest.mark.parametrize("cursor", ["0" * 200, "\u00e9t\u00e9", "a"])
def test_malformed_cursor_is_a_422_problem(cursor: str) -> None:
    with pytest.raises(Problem) as caught:
        decode_cursor(cursor)
    assert caught.value.status == 422
    assert "cursor" in (caught.value.detail or "")
    assert isinstance(caught.value, ValueError)


def test_a_cursor_round_trips() -> None:
    assert decode_cursor(encode_cursor("prj_01jd8x3k2m9q4r7t5v6w8y0z1a")) == (
        "prj_01jd8x3k2m9q4r7t5v6w8y0z1a"
    )
