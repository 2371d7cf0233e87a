import time

import pytest

from qlp_kit.ids import is_id, new_event_id, new_id


def test_prefix_and_shape() -> None:
    i = new_id("org")
    assert i.startswith("org_") and len(i) == 30 and is_id(i, "org")
    assert not is_id(i, "usr")
    assert "." not in new_event_id() and "$" not in new_event_id()


def test_time_ordered() -> None:
    a = new_id("job")
    time.sleep(0.002)
    b = new_id("job")
    assert a < b


def test_unique() -> None:
    assert len({new_id("key") for _ in range(10_000)}) == 10_000


@pytest.mark.parametrize("bad", ["", "O", "toolong", "Org", "o1"])
def test_bad_prefix(bad: str) -> None:
    with pytest.raises(ValueError):
        new_id(bad)
