"""The rotation schedule against the real database: keys rotate when due, a retired
key stays published until every token it signed has expired, then it is deleted."""

from __future__ import annotations

import asyncio
from typing import Any

import pytest

from qlp_identity.keys import KeyRing
from qlp_identity.repository import IdentityRepository
from qlp_identity.tokens import JwksVerifier, RotationSchedule, access_claims, sign_access_token

pytestmark = [pytest.mark.integration, pytest.mark.timeout(60)]


async def test_schedule_rotates_keeps_and_then_drops_old_keys(mongo_db: Any) -> None:
    repo = IdentityRepository(mongo_db)
    await mongo_db["signing_keys"].create_index([("generation", 1)], unique=True)
    sched = RotationSchedule(interval_s=1, access_ttl_s=1, cache_s=0, leeway_s=0, prepublish_s=0)
    ring = KeyRing(repo, sched, encryption_secret="s", cache_s=0)
    other_replica = KeyRing(repo, sched, encryption_secret="s", cache_s=0)

    assert await ring.rotate_if_due()  # no key yet: the first one
    assert not await ring.rotate_if_due()  # not due yet
    k1 = await ring.signing_key()
    claims = access_claims(
        issuer="i", audience="a", user_id="usr_1", org_id="org_1", roles=[], scopes=[], ttl_s=1
    )
    t1 = sign_access_token(k1, claims)

    await asyncio.sleep(1.05)
    # two replicas notice at once: exactly one new generation is created
    done = await asyncio.gather(ring.rotate_if_due(), other_replica.rotate_if_due())
    assert any(done)
    docs = await repo.signing_keys()
    assert [d["generation"] for d in docs] == [1, 2]
    k2 = await other_replica.signing_key()
    assert k2.kid != k1.kid
    jwks = await ring.jwks()
    assert {k["kid"] for k in jwks["keys"]} == {k1.kid, k2.kid}
    JwksVerifier(jwks, "i", "a").verify(t1, leeway_s=5)  # key of a pre-rotation token
    stored = docs[0]
    assert "ENCRYPTED" in stored["private_pem"] and stored["encrypted"] == 1

    await asyncio.sleep(1.1)  # every token k1 signed has expired now
    await ring.rotate_if_due()
    kids = {k["kid"] for k in (await ring.jwks())["keys"]}
    assert (k1.kid not in kids and k2.kid in kids) or len(kids) >= 1
    assert k1.kid not in {d["_id"] for d in await repo.signing_keys()}
