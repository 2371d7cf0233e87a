"""Generation through the gateway (services as processes, as ``make up`` runs them):
sign-up → a plain-language request → quota reserved by billing → built and gated by the
generation worker → the version downloaded, unpacked, and its own lint and tests run
from the unpacked folder; the quota is committed; another org sees nothing."""

from __future__ import annotations

import asyncio
import io
import subprocess
import sys
import time
import zipfile
from pathlib import Path
from typing import Any

import httpx
import pytest

from qlp_testing.flows import bearer, signup

pytestmark = [pytest.mark.e2e, pytest.mark.timeout(400)]

PASSWORD = "E2e-generation-pass-42"


async def _until(c: httpx.AsyncClient, path: str, headers: dict[str, str], pred: Any) -> Any:
    deadline = time.monotonic() + 240
    last: Any = None
    while time.monotonic() < deadline:
        r = await c.get(path, headers=headers)
        last = r
        if r.status_code == 200 and pred(r.json()):
            return r.json()
        await asyncio.sleep(0.3)
    raise AssertionError(f"{path}: condition not reached; last {last.status_code} {last.text}")


async def test_request_to_downloaded_app_whose_tests_pass(
    qlp_platform: Any, tmp_path: Path
) -> None:
    async with httpx.AsyncClient(base_url=qlp_platform.state.gateway_url, timeout=60) as c:
        a = bearer(await signup(c, "gen-a", PASSWORD))
        b = bearer(await signup(c, "gen-b", PASSWORD))
        await _until(c, "/v1/billing/subscription", a, lambda s: s["plan"] == "free")
        r = await c.post(
            "/v1/generations",
            json={
                "prompt": "appointment booking for a salon with GDPR for EU customers",
                "tier": "T1",
            },
            headers=a,
        )
        assert r.status_code == 202, r.text
        gen_id = r.json()["id"]
        done = await _until(
            c, f"/v1/generations/{gen_id}", a, lambda g: g["status"] in ("completed", "failed")
        )
        assert done["status"] == "completed", done
        assert done["gate"]["passed"] and "gdpr" in done["blueprint"]["regulations"]
        pid, vid = done["project_id"], done["version_id"]
        r = await c.get(f"/v1/projects/{pid}/versions/{vid}/archive?format=zip", headers=a)
        assert r.status_code == 200, r.text
        zipfile.ZipFile(io.BytesIO(r.content)).extractall(tmp_path)
        (folder,) = list(tmp_path.iterdir())
        bin_dir = Path(sys.executable).parent
        for cmd in (
            [str(bin_dir / "ruff"), "check", "--no-cache", "."],
            [sys.executable, "-m", "pytest", "-q"],
        ):
            p = subprocess.run(cmd, cwd=folder, capture_output=True, text=True, timeout=300)
            assert p.returncode == 0, p.stdout + p.stderr

        def gens(q: dict[str, Any]) -> dict[str, Any]:
            return next(x for x in q["items"] if x["meter"] == "generations")

        q = await _until(c, "/v1/billing/quotas", a, lambda q: gens(q)["used"] == 1)
        assert gens(q)["reserved"] == 0

        def t1(u: dict[str, Any]) -> dict[str, Any] | None:
            return next((m for m in u["meters"] if m["meter"] == "generations.t1"), None)

        # metered by tier once (billing prices generations.t1 at the plan's T1 price)
        u = await _until(c, "/v1/billing/usage", a, lambda u: t1(u) is not None)
        assert (t1(u) or {}).get("sum") == 1
        assert (await c.get(f"/v1/generations/{gen_id}", headers=b)).status_code == 404
        assert (
            await c.get(f"/v1/projects/{pid}/versions/{vid}/archive", headers=b)
        ).status_code == 404
        assert (await c.get("/v1/projects", headers=b)).json()["items"] == []
        assert len((await c.get("/v1/patterns?q=booking", headers=a)).json()["items"]) == 1
