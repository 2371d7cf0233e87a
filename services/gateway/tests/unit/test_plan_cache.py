from __future__ import annotations

from typing import Any

from qlp_gateway.service import PlanCache


class Repo:
    def __init__(self) -> None:
        self.plan: str | None = "starter"
        self.fail = False
        self.calls = 0

    async def get(self, org_id: str) -> str | None:
        self.calls += 1
        if self.fail:
            raise ConnectionError("database down")
        return self.plan


async def test_plan_cache_reads_through_and_falls_back() -> None:
    repo = Repo()
    cache = PlanCache(repo, default="free", ttl_s=0.0)  # type: ignore[arg-type]
    assert await cache.plan_of("org_1") == "starter"
    repo.plan = None
    assert await cache.plan_of("org_1") == "free"  # no event yet: the default plan
    repo.plan = "enterprise"
    assert await cache.plan_of("org_1") == "enterprise"
    repo.fail = True  # the store is down: keep what was known, never fail the request
    assert await cache.plan_of("org_1") == "enterprise"
    assert await cache.plan_of("org_new") == "free"


async def test_plan_cache_memoizes_within_ttl() -> None:
    repo = Repo()
    cache = PlanCache(repo, default="free", ttl_s=60.0)  # type: ignore[arg-type]
    for _ in range(10):
        assert await cache.plan_of("org_1") == "starter"
    assert repo.calls == 1
    cache.remember("org_1", "professional")
    got: Any = await cache.plan_of("org_1")
    assert got == "professional" and repo.calls == 1
