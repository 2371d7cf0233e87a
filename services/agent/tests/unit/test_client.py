"""The gateway client: auth header, retries with backoff, stale-epoch detection."""

from __future__ import annotations

import httpx
import pytest

from qlp_agent.client import (
    GatewayClient,
    GatewayError,
    GatewayUnavailable,
    StaleEpoch,
    is_stale_epoch,
)

STALE = {"type": "https://errors.example/problems/stale-epoch", "title": "stale", "status": 409}


def client(handler: object, retries: int = 3) -> GatewayClient:
    return GatewayClient(
        "http://gw",
        "qlp_k",
        max_retries=retries,
        backoff_base=0.001,
        backoff_cap=0.01,
        transport=httpx.MockTransport(handler),  # type: ignore[arg-type]
    )


async def test_retries_5xx_then_succeeds() -> None:
    seen: list[httpx.Request] = []

    def h(req: httpx.Request) -> httpx.Response:
        seen.append(req)
        return httpx.Response(503) if len(seen) < 3 else httpx.Response(201, json={"id": "prv_1"})

    c = client(h)
    assert (await c.register({"x": 1}))["id"] == "prv_1"
    assert len(seen) == 3 and seen[0].headers["authorization"] == "Bearer qlp_k"
    await c.aclose()


async def test_connection_errors_exhaust_to_unavailable() -> None:
    def h(req: httpx.Request) -> httpx.Response:
        raise httpx.ConnectError("refused", request=req)

    c = client(h, retries=2)
    with pytest.raises(GatewayUnavailable):
        await c.heartbeat("prv_1", {})
    await c.aclose()


async def test_stale_epoch_raises_and_is_not_retried() -> None:
    calls = 0

    def h(req: httpx.Request) -> httpx.Response:
        nonlocal calls
        calls += 1
        return httpx.Response(409, json=STALE, headers={"content-type": "application/problem+json"})

    c = client(h)
    with pytest.raises(StaleEpoch):
        await c.job_status("prv_1", "job_1", 1, "running")
    with pytest.raises(StaleEpoch):
        await c.upload_checkpoint("prv_1", "job_1", 1, 5, b"x")
    assert calls == 2
    await c.aclose()


async def test_other_4xx_is_a_plain_error() -> None:
    c = client(
        lambda req: httpx.Response(409, json={"type": "https://e/conflict", "detail": "nope"})
    )
    with pytest.raises(GatewayError, match="nope") as e:
        await c.logs("prv_1", "job_1", 1, ["a"])
    assert not isinstance(e.value, StaleEpoch)
    await c.aclose()


async def test_checkpoint_calls_carry_epoch_and_step() -> None:
    seen: list[httpx.Request] = []

    def h(req: httpx.Request) -> httpx.Response:
        seen.append(req)
        if req.method == "POST":
            return httpx.Response(201, json={"checkpoint_id": "ckp_1", "step": 7})
        if seen and len(seen) == 2:
            return httpx.Response(404, json={"title": "none"})
        return httpx.Response(
            200, content=b"DATA", headers={"X-Checkpoint-Id": "ckp_1", "X-Checkpoint-Step": "7"}
        )

    c = client(h)
    assert (await c.upload_checkpoint("prv_1", "job_1", 3, 7, b"DATA"))["step"] == 7
    assert seen[0].url.params["epoch"] == "3" and seen[0].url.params["step"] == "7"
    assert (
        seen[0].headers["content-type"] == "application/octet-stream" and seen[0].content == b"DATA"
    )
    assert await c.latest_checkpoint("prv_1", "job_1", 3) is None
    ck = await c.latest_checkpoint("prv_1", "job_1", 3)
    assert ck is not None and (ck.data, ck.checkpoint_id, ck.step) == (b"DATA", "ckp_1", 7)
    assert seen[-1].url.params["epoch"] == "3"
    await c.aclose()


async def test_assignments_long_poll() -> None:
    def h(req: httpx.Request) -> httpx.Response:
        assert req.url.params["wait_s"] == "15"
        return httpx.Response(200, json={"items": [{"job_id": "job_1"}, "junk"]})

    c = client(h)
    assert await c.assignments("prv_1", 15) == [{"job_id": "job_1"}]
    await c.aclose()


def test_is_stale_epoch() -> None:
    assert is_stale_epoch(409, STALE)
    assert is_stale_epoch(409, {"type": "stale-epoch"})
    assert not is_stale_epoch(400, STALE)
    assert not is_stale_epoch(409, {"type": "https://e/not-stale-epochs"})
    assert not is_stale_epoch(409, None)
