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
    done = idem.Existing(fp, "done", NOW)
    pending = idem.Existing(fp, "pending", NOW - timedelta(seconds=5))
    stale = idem.Existing(fp, "pending", NOW - timedelta(seconds=500))
    assert idem.decide(done, fp, NOW, 120) == "replay"
    assert idem.decide(done, "other", NOW, 120) == "mismatch"
    assert idem.decide(pending, "other", NOW, 120) == "mismatch"
    assert idem.decide(pending, fp, NOW, 120) == "in_flight"
    assert idem.decide(stale, fp, NOW, 120) == "take_over"


def test_keys_and_storage_rules() -> None:
    assert idem.valid_key("a") and idem.valid_key("x" * 255)
    assert not idem.valid_key("") and not idem.valid_key("x" * 256)
    assert not idem.valid_key("has space") and not idem.valid_key("é")
    assert idem.record_id("org_1", "k") == "org_1:k"
    assert idem.storable(201) and idem.storable(422) and not idem.storable(503)
    kept = idem.stored_headers(
        [("Content-Type", "application/json"), ("Location", "/x"), ("Set-Cookie", "s")]
    )
    assert kept == {"content-type": "application/json", "location": "/x"}
