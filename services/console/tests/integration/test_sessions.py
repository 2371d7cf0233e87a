"""The session store on the real (embedded) database: a session is found by the digest
of its cookie, ends after its idle time, and is gone once deleted (logout)."""

from __future__ import annotations

from typing import Any

import pytest

from qlp_console import security
from qlp_console.repository import SessionRepository

pytestmark = pytest.mark.integration


async def test_create_get_expire_delete(mongo_db: Any) -> None:
    repo = SessionRepository(mongo_db)
    sid = security.new_token()
    key = security.session_key(sid)
    await repo.create(key, {"org_id": "org_1", "access_token": "t", "csrf": "c"}, 3600, 7200)
    doc = await repo.get(key)
    assert doc is not None and doc["org_id"] == "org_1"
    assert await mongo_db["sessions"].find_one({"_id": sid}) is None  # only the digest is kept

    await repo.touch(key, 3600)
    assert await repo.delete(key) is True
    assert await repo.get(key) is None
    assert await repo.delete(key) is False

    idle = security.session_key(security.new_token())
    await repo.create(idle, {"org_id": "org_1", "csrf": "c"}, 0, 7200)  # idle time already over
    assert await repo.get(idle) is None
    assert await mongo_db["sessions"].find_one({"_id": idle}) is None


async def test_one_refresh_claim_at_a_time(mongo_db: Any) -> None:
    repo = SessionRepository(mongo_db)
    key = security.session_key(security.new_token())
    await repo.create(key, {"org_id": "org_1", "refresh_token": "r1", "csrf": "c"}, 3600, 7200)
    assert await repo.claim_refresh(key, "r1", 10) is True
    assert await repo.claim_refresh(key, "r1", 10) is False  # held by the first
    assert await repo.claim_refresh(key, "r0", 10) is False  # not the current token
    await repo.update_tokens(key, {"refresh_token": "r2", "refreshing_until": 0})
    assert await repo.claim_refresh(key, "r2", 10) is True
    await repo.update_tokens(key, {"refreshing_until": 0})
    assert await repo.claim_refresh(key, "r2", -1) is True  # an expired hold is taken over
    assert await repo.claim_refresh(key, "r2", 10) is True
