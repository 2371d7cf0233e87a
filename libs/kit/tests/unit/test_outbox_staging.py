"""How events are staged into a document update (pure logic)."""

import base64

from qlp.usage.v1 import events_pb2 as usage
from qlp_kit.outbox import (
    ORDER,
    OUTBOX,
    PENDING,
    SEQ,
    ordered_entries,
    outbox_update,
    stage,
    strip_outbox,
    with_outbox,
)


def _ev(n: int = 1):  # type: ignore[no-untyped-def]
    msg = usage.UsageRecorded(org_id="org_a", meter="api_calls", quantity=n)
    return stage(msg, org_id="org_a", key="agg_1", source="qlp/test")


def test_stage_builds_cloudevents_headers_and_topic() -> None:
    ev = _ev()
    h = ev.entry["headers"]
    assert h["ce_id"] == ev.event_id and h["ce_type"] == "qlp.usage.v1.UsageRecorded"
    assert h["ce_specversion"] == "1.0" and h["qlp_tenant"] == "org_a"
    assert h["ce_source"] == "qlp/test" and h["ce_subject"] == "agg_1"
    assert h["ce_time"].endswith("Z")
    assert ev.entry["topic"] == "qlp.usage.v1" and ev.entry["key"] == "agg_1"
    back = usage.UsageRecorded.FromString(base64.b64decode(ev.entry["data"]))
    assert back.meter == "api_calls"


def test_update_merges_with_state_change_in_one_write() -> None:
    a, b = _ev(1), _ev(2)
    upd = outbox_update([a, b], {"$set": {"status": "paid"}, "$inc": {"version": 1}})
    assert upd["$set"]["status"] == "paid"
    assert upd["$set"][f"{OUTBOX}.{a.event_id}"] == a.entry
    assert upd["$set"][f"{OUTBOX}.{b.event_id}"] == b.entry
    assert upd["$set"][PENDING] == 1
    assert upd["$inc"] == {"version": 1, SEQ: 1}
    # the write itself records the order (atomically, in the database), no clock
    assert upd["$push"] == {ORDER: {"$each": [a.event_id, b.event_id]}}
    assert "order" not in a.entry


def test_no_events_changes_nothing() -> None:
    upd = {"$set": {"x": 1}}
    assert outbox_update([], upd) == upd


def test_insert_form_and_strip() -> None:
    ev = _ev()
    doc = with_outbox({"_id": "agg_1", "org_id": "org_a"}, [ev])
    assert doc[PENDING] == 1 and doc[SEQ] == 1 and ev.event_id in doc[OUTBOX]
    assert doc[ORDER] == [ev.event_id]
    assert strip_outbox(doc) == {"_id": "agg_1", "org_id": "org_a"}


def test_an_update_too_large_for_one_write_is_refused() -> None:
    import pytest

    from qlp_kit.outbox import MAX_FIELDS_PER_UPDATE, TooManyEvents

    with pytest.raises(TooManyEvents):
        outbox_update([_ev(i) for i in range(MAX_FIELDS_PER_UPDATE)])


def test_entries_are_ordered_by_the_document_not_by_a_clock() -> None:
    a, b, c = _ev(1), _ev(2), _ev(3)
    doc = {OUTBOX: {c.event_id: c.entry, a.event_id: a.entry, b.event_id: b.entry}}
    doc[ORDER] = [b.event_id, a.event_id, c.event_id]
    assert [eid for eid, _ in ordered_entries(doc)] == [b.event_id, a.event_id, c.event_id]


def test_entries_stored_with_the_old_clock_order_stay_readable_and_come_first() -> None:
    new = _ev(3)
    doc = {
        OUTBOX: {
            "old2": {**_ev(2).entry, "order": 200},
            new.event_id: new.entry,
            "old1": {**_ev(1).entry, "order": 100},
        },
        ORDER: [new.event_id],
    }
    assert [eid for eid, _ in ordered_entries(doc)] == ["old1", "old2", new.event_id]
    legacy = {OUTBOX: {"x": {"order": 2}, "y": {"order": 1}}}  # no _outbox_order at all
    assert [eid for eid, _ in ordered_entries(legacy)] == ["y", "x"]


def test_wakeup_recognises_writes_that_stage_events() -> None:
    from qlp_kit.outbox import _stages_events

    assert _stages_events(outbox_update([_ev()], {"$set": {"x": 1}}))
    assert _stages_events(with_outbox({"_id": "a"}, [_ev()]))
    assert not _stages_events({"$set": {OUTBOX: {}, PENDING: 0}})  # the relay's clear
    assert not _stages_events({"$set": {"x": 1}})
    assert not _stages_events(with_outbox({"_id": "a"}, []))
