"""``qlpctl`` against a real local platform: every service as a process against the
session's broker and database, exactly as ``make up`` runs them (the qlp_platform
fixture). qlpctl runs as its own process, as an operator runs it."""

from __future__ import annotations

import asyncio
import json
import os
import subprocess
import sys
import uuid
from typing import Any

import httpx
import pytest

from qlp_kit.auth import Principal, request_target, sign_principal
from qlp_kit.consumer import DLQ_REASON, DLQ_TOPIC
from qlp_kit.producer import Producer, Record

pytestmark = pytest.mark.e2e

SECRET = "e2e-internal-secret"  # what the qlp_platform fixture gives every service


async def qlpctl(platform: Any, *args: str) -> tuple[int, Any, str]:
    env = {**os.environ, "QLP_INTERNAL_AUTH_SECRET": SECRET}
    cmd = [sys.executable, "-m", "qlp_infra.ctl.cli", "--state-dir", str(platform.dir)]
    done = await asyncio.to_thread(
        subprocess.run,
        [*cmd, "--output", "json", *args],
        env=env,
        capture_output=True,
        text=True,
        timeout=240,
        check=False,
    )
    try:
        body = json.loads(done.stdout) if done.stdout.strip() else None
    except ValueError:
        body = done.stdout
    return done.returncode, body, done.stderr


async def _signup(gateway: str) -> tuple[str, str]:
    email = f"ctl-{uuid.uuid4().hex[:10]}@example.com"
    async with httpx.AsyncClient(base_url=gateway, timeout=30) as http:
        r = await http.post(
            "/v1/auth/signup",
            json={"org_name": "Ctl", "email": email, "password": "correct horse battery 42x"},
        )
    assert r.status_code == 201, r.text
    token = r.json()["access_token"]
    import base64

    claims = json.loads(base64.urlsafe_b64decode(token.split(".")[1] + "=="))
    return claims["org"], email


async def test_status_shows_every_service_ready_with_lag_and_dlq(qlp_platform: Any) -> None:
    code, status, err = await qlpctl(qlp_platform, "status")
    assert code == 0, err
    assert status["target"] == "local" and status["healthy"] is True
    names = {s["name"] for s in status["services"]}
    assert {"gateway", "identity", "billing", "scheduler"} <= names
    for s in status["services"]:
        assert s["readyz"] is True
        assert s["checks"] == {"started": True, "mongodb": True, "kafka": True}
    groups = {(r["group"], r["topic"]) for r in status["consumer_lag"]}
    assert ("billing.metering", "qlp.usage.v1") in groups
    assert all(r["lag"] >= 0 for r in status["consumer_lag"])


async def test_dlq_list_and_replay_move_dead_letters_back(
    qlp_platform: Any, qlp_infra: Any
) -> None:
    group = f"ctltest{uuid.uuid4().hex[:6]}.probe"
    origin = f"qlp.ctltest.{uuid.uuid4().hex[:6]}.v1"
    producer = Producer(qlp_infra.kafka, client_id="ctl-test")
    await producer.start()
    try:
        await producer.send_many(
            [
                Record(
                    f"qlp.dlq.{group}",
                    f"k{i}",
                    b"{}",
                    {DLQ_TOPIC: origin, DLQ_REASON: "boom", "ce_id": f"evt_{i}", "ce_type": "t"},
                )
                for i in range(3)
            ]
        )
    finally:
        await producer.stop()

    code, listed, err = await qlpctl(qlp_platform, "dlq", "list", group)
    assert code == 0, err
    assert [d["event_id"] for d in listed] == ["evt_0", "evt_1", "evt_2"]
    assert {d["reason"] for d in listed} == {"boom"} and listed[0]["original_topic"] == origin

    code, status, err = await qlpctl(qlp_platform, "status")
    depth = {d["group"]: d for d in status["dlq"]}
    assert depth[group]["records"] == 3 and depth[group]["not_replayed"] == 3

    code, out, err = await qlpctl(qlp_platform, "dlq", "replay", group, "--limit", "2")
    assert code == 0, err
    assert out == {"group": group, "replayed": 2}
    code, status, err = await qlpctl(qlp_platform, "status")
    assert {d["group"]: d for d in status["dlq"]}[group]["not_replayed"] == 1
    code, out, err = await qlpctl(qlp_platform, "dlq", "replay", group)
    assert out["replayed"] == 1


async def test_ledger_check_and_key_rotation(qlp_platform: Any) -> None:
    code, report, err = await qlpctl(qlp_platform, "ledger", "check")
    assert code == 0, err
    assert report["ok"] is True and report["unbalanced"] == []

    code, rotated, err = await qlpctl(qlp_platform, "keys", "rotate")
    assert code == 0, err
    identity = qlp_platform.state.services["identity"]["url"]
    async with httpx.AsyncClient(timeout=30) as http:
        jwks = (await http.get(f"{identity}/.well-known/jwks.json")).json()
    assert rotated["kid"] in {k["kid"] for k in jwks["keys"]}


async def test_providers_drain(qlp_platform: Any) -> None:
    org = f"org_ctl{uuid.uuid4().hex[:8]}"
    agent = Principal(org_id=org, subject="key_x", kind="api_key", scopes=["provider:agent"])
    fp = uuid.uuid4().hex[:8]
    body = {
        "name": f"rig {fp}",
        "region": "eu-west",
        "price_per_gpu_hour": {"amount": 200, "currency": "USD"},
        "machine": {
            "fingerprint": fp,
            "hostname": f"host-{fp}",
            "cpu_count": 8,
            "ram_gb": 64,
            "disk_gb": 500,
            "driver_version": "550.54",
            "cuda_version": "12.4",
            "simulated": True,
            "gpus": [{"uuid": f"GPU-{fp}", "index": 0, "model": "NVIDIA H100", "memory_gb": 80}],
        },
    }
    scheduler = qlp_platform.state.services["scheduler"]["url"]
    headers = sign_principal(agent, SECRET, method="POST", target=request_target("/v1/providers"))
    async with httpx.AsyncClient(timeout=30) as http:
        r = await http.post(f"{scheduler}/v1/providers", json=body, headers=headers)
    assert r.status_code == 201, r.text
    provider_id = r.json()["id"]

    code, out, err = await qlpctl(qlp_platform, "providers", "drain", provider_id, "--org", org)
    assert code == 0, err
    assert out["id"] == provider_id and out["status"] == "draining"
    # another organisation cannot drain it: the scheduler answers 404 and qlpctl exits 1
    code, _, err = await qlpctl(
        qlp_platform, "providers", "drain", provider_id, "--org", "org_someone_else"
    )
    assert code == 1 and "404" in err


async def test_tenants_export_is_one_org_and_redacts_credentials(qlp_platform: Any) -> None:
    gateway = qlp_platform.state.gateway_url
    org, email = await _signup(gateway)
    other_org, other_email = await _signup(gateway)
    code, export, err = await qlpctl(qlp_platform, "tenants", "export", org)
    assert code == 0, err
    assert export["org_id"] == org
    identity = export["databases"]["qlp_identity"]
    assert [u["email"] for u in identity["users"]] == [email]
    assert identity["users"][0]["password_hash"] == "[redacted]"
    assert {m["org_id"] for m in identity["memberships"]} == {org}
    text = json.dumps(export)
    assert other_org not in text and other_email not in text
    assert "qlp_billing" in export["databases"]  # the org's subscription and wallet
