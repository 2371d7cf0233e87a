from __future__ import annotations

from datetime import UTC, datetime, timedelta

from qlp_gateway import idempotency as idem

NOW = datetime(2026, 1, 1, tzinfo=UTC)


def test_fingerprint_covers_method_path_query_and_body() -> None:
    base = idem.fingerprint("POST", "/v1/projects", "", b'{"a":1}')
    assert base == idem.fingerprint("post", "/v1/projects", "", b'{"a":1}')
    others = {
        idem.fingerprint("PUT", "/v1/projects", "", b'{"a":1}'),
        idem.fingerprint("POST", "/v1/projectsx", "", b'{"a":1}'),
        idem.fingerprint("POST", "/v1/projects", "x=1", b'{"a":1}'),
        idem.fingerprint("POST", "/v1/projects", "", b'{"a":2}'),
        idem.fingerprint("POST", "/v1/projects", "", b""),
    }
    assert base not in others and len(others) == 5
    # Field boundaries cannot be shifted to collide.
    assert idem.fingerprint("POST", "/a", "b", b"") != idem.fingerprint("POST", "/ab", "", b"")


def test_decide() -> None:
    fp = "f"

    def rec(state: str, age_s: float, *, has_body: bool = True) -> idem.Existing:
        return idem.Existing(fp, state, NOW - timedelta(seconds=age_s), has_body=has_body)

    assert idem.decide(rec(idem.DONE, 5), fp, NOW, 120) == "replay"
    assert idem.decide(rec(idem.DONE, 5, has_body=False), fp, NOW, 120) == "not_stored"
    assert idem.decide(rec(idem.DONE, 5), "other", NOW, 120) == "mismatch"
    assert idem.decide(rec(idem.CLAIMED, 5), "other", NOW, 120) == "mismatch"
    assert idem.decide(rec(idem.CLAIMED, 5), fp, NOW, 120) == "in_flight"
    # Claimed but never sent, and abandoned: taken over.
    assert idem.decide(rec(idem.CLAIMED, 500), fp, NOW, 120) == "take_over"
    # Sent: never taken over, however old (it may have executed).
    assert idem.decide(rec(idem.SENT, 5), fp, NOW, 120) == "in_flight"
    assert idem.decide(rec(idem.SENT, 500), fp, NOW, 120) == "unknown"
    assert idem.decide(rec(idem.UNKNOWN, 1), fp, NOW, 120) == "unknown"
    # Records of the former layout ("pending") are never rerun either.
    assert idem.decide(rec("pending", 500), fp, NOW, 120) == "unknown"


def test_records_are_per_principal() -> None:
    rid = idem.record_id("org_1", "usr_a", "k")
    assert rid.startswith("org_1:")
    assert rid != idem.record_id("org_1", "usr_b", "k")
    assert rid != idem.record_id("org_1", "key_a", "k")
    assert rid != idem.record_id("org_2", "usr_a", "k")
    # Parts cannot be shifted into each other.
    assert idem.record_id("org_1", "a:b", "c") != idem.record_id("org_1", "a", "b:c")


def test_not_executed_answers() -> None:
    for status in (401, 403, 429):
        assert idem.not_executed(status, [])
    assert idem.not_executed(422, [("X-QLP-Not-Executed", "1")])
    assert idem.not_executed(409, [("x-qlp-not-executed", "1")])
    for status in (200, 201, 400, 404, 409, 422, 500, 503):
        assert not idem.not_executed(status, [("content-type", "application/json")])


def test_times_round_trip_as_epoch_ms() -> None:
    assert idem.from_epoch_ms(idem.epoch_ms(NOW)) == NOW
    doc = {"fingerprint": "f", "state": "sent", "claimed_ms": 1, "sent_ms": idem.epoch_ms(NOW)}
    existing = idem.existing_from_doc(doc)
    assert existing.since == NOW and existing.state == "sent" and existing.has_body is False


def test_keys_and_storage_rules() -> None:
    assert idem.valid_key("a") and idem.valid_key("x" * 255)
    assert not idem.valid_key("") and not idem.valid_key("x" * 256)
    assert not idem.valid_key("has space") and not idem.valid_key("é")
    kept = idem.stored_headers(
        [("Content-Type", "application/json"), ("Location", "/x"), ("Set-Cookie", "s")]
    )
    assert kept == {"content-type": "application/json", "location": "/x"}
