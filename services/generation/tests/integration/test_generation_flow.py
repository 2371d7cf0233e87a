"""The service as it runs (in-process app: HTTP, worker consumer, outbox relay) against
the real broker and database: request → worker → gate → version → download."""

from __future__ import annotations

import io
import os
import subprocess
import sys
import tarfile
import zipfile
from pathlib import Path
from typing import Any

import pytest

from qlp.generation.v1 import events_pb2 as gev
from qlp_contracts import topics
from qlp_kit.events import build_headers
from qlp_kit.producer import Producer, Record

pytestmark = [pytest.mark.integration, pytest.mark.timeout(600)]


async def test_request_to_gated_version_download_and_time_machine(
    app_url: str, unique: str, tmp_path: Path, app_db: Any, h: Any
) -> None:
    api, finished = h.api, h.finished
    org, other = f"org_a{unique}", f"org_b{unique}"
    r = await api(
        app_url,
        "POST",
        "/v1/generations",
        org,
        json={"prompt": "build me a SaaS for project management", "tier": "T1"},
    )
    assert r.status_code == 202, r.text
    job = r.json()
    assert job["status"] in ("queued", "running") and job["gate"] is None
    assert job["blueprint"]["domain"] == "project-management"
    done = await finished(app_url, org, job["id"])
    assert done["status"] == "completed", done
    gate = done["gate"]
    assert gate["passed"] and gate["tests_failed"] == 0 and gate["tests_passed"] >= 10
    assert gate["coverage_bps"] > 5000 and gate["lint_findings"] == 0
    pid, vid = done["project_id"], done["version_id"]

    # the progress stream (SSE) of a finished job: its state, then the end
    r = await api(app_url, "GET", f"/v1/generations/{job['id']}/events", org)
    assert r.status_code == 200 and r.headers["content-type"].startswith("text/event-stream")
    events = [b.split("\n")[0] for b in r.text.strip().split("\n\n")]
    assert events == ["event: progress", "event: end"], r.text
    assert '"status": "completed"' in r.text

    # GenerationStarted delivered again: nothing runs twice
    started = gev.GenerationStarted(
        org_id=org, generation_id=job["id"], project_id=done["project_id"]
    )
    headers = build_headers(started, org_id=org, source="qlp/tests", subject=job["id"])
    p = Producer(os.environ["QLP_TEST_KAFKA"], client_id="generation-tests")
    await p.start()
    try:
        await p.send_many(
            [Record(topics.GENERATION.name, job["id"], started.SerializeToString(), headers)]
        )
    finally:
        await p.stop()

    r = await api(app_url, "GET", f"/v1/projects/{pid}/versions", org)
    (v1,) = r.json()["items"]
    assert (v1["id"], v1["number"], v1["gate"]["passed"]) == (vid, 1, True)

    # the archive unpacks to one folder whose lint and tests pass from there
    r = await api(app_url, "GET", f"/v1/projects/{pid}/versions/{vid}/archive?format=zip", org)
    assert r.status_code == 200 and r.headers["content-type"] == "application/zip"
    zipfile.ZipFile(io.BytesIO(r.content)).extractall(tmp_path / "z")  # noqa: S202 - our own archive
    (folder,) = list((tmp_path / "z").iterdir())
    assert (folder / "Makefile").exists() and "make test" in (folder / "README.md").read_text()
    bin_dir = Path(sys.executable).parent
    for cmd in (
        [str(bin_dir / "ruff"), "check", "--no-cache", "."],
        [sys.executable, "-m", "pytest", "-q"],
    ):
        p = subprocess.run(cmd, cwd=folder, capture_output=True, text=True, timeout=300)
        assert p.returncode == 0, p.stdout + p.stderr
    r = await api(app_url, "GET", f"/v1/projects/{pid}/versions/{vid}/archive?format=tar.gz", org)
    names = tarfile.open(fileobj=io.BytesIO(r.content), mode="r:gz").getnames()
    assert f"{folder.name}/app/main.py" in names
    r = await api(app_url, "GET", f"/v1/projects/{pid}/versions/{vid}/archive?format=rar", org)
    assert r.status_code == 422

    # restore: a new version equal to the old one; no file stored twice
    blobs = await app_db["blobs"].count_documents({"org_id": org})
    r = await api(app_url, "POST", f"/v1/projects/{pid}/versions/{vid}/restore", org)
    assert r.status_code == 201, r.text
    v2 = r.json()
    assert (v2["number"], v2["parent_version_id"], v2["source"]) == (2, vid, "restore")
    assert await app_db["blobs"].count_documents({"org_id": org}) == blobs
    r = await api(
        app_url, "GET", f"/v1/projects/{pid}/diff", org, params={"from": vid, "to": v2["id"]}
    )
    assert r.status_code == 200 and r.json()["files"] == []
    r = await api(app_url, "POST", f"/v1/projects/{pid}/versions/{vid}/branch", org)
    assert r.status_code == 201 and r.json()["branch"] == r.json()["id"]

    # what if: an edited blueprint on the same project, parent = v1
    bp = done["blueprint"]
    bp["entities"][0]["fields"].append({"name": "budget", "type": "money", "required": False})
    r = await api(
        app_url,
        "POST",
        "/v1/generations",
        org,
        json={"blueprint": bp, "tier": "T1", "project_id": pid, "parent_version_id": vid},
    )
    assert r.status_code == 202, r.text
    done2 = await finished(app_url, org, r.json()["id"])
    assert done2["status"] == "completed" and done2["project_id"] == pid
    r = await api(
        app_url,
        "GET",
        f"/v1/projects/{pid}/diff",
        org,
        params={"from": vid, "to": done2["version_id"]},
    )
    changed = {f["path"]: f for f in r.json()["files"]}
    assert (
        "app/models.py" in changed
        and "+    budget: Money | None = None" in changed["app/models.py"]["patch"]
    )

    # feedback and the pattern's measured outcomes (counts only)
    r = await api(
        app_url,
        "POST",
        f"/v1/projects/{pid}/versions/{vid}/feedback",
        org,
        json={"rating": 5, "comment": "works"},
    )
    assert r.status_code == 204
    r = await api(app_url, "GET", "/v1/patterns", org, params={"q": "project"})
    (pat,) = [p for p in r.json()["items"] if p["id"] == "project-management"]
    assert pat["gate_runs"] >= 2 and pat["gate_pass_rate"] == 1.0 and pat["feedback_up"] >= 1
    assert len((await api(app_url, "GET", "/v1/patterns", org)).json()["items"]) >= 15
    shared = await app_db["pattern_outcomes"].find_one({"_id": "project-management"})
    assert org not in str(shared) and vid not in str(shared) and job["id"] not in str(shared)

    doc = await app_db["generations"].find_one({"_id": job["id"]})
    assert (doc["attempts"], doc["status"]) == (1, "completed")
    assert await app_db["versions"].count_documents({"generation_id": job["id"]}) == 1

    # tenant isolation: another org sees none of it
    for method, path in [
        ("GET", f"/v1/generations/{job['id']}"),
        ("GET", f"/v1/projects/{pid}/versions"),
        ("GET", f"/v1/projects/{pid}/versions/{vid}/archive"),
        ("GET", f"/v1/projects/{pid}/diff?from={vid}&to={v2['id']}"),
        ("POST", f"/v1/projects/{pid}/versions/{vid}/restore"),
        ("POST", f"/v1/projects/{pid}/versions/{vid}/branch"),
    ]:
        assert (await api(app_url, method, path, other)).status_code == 404, path
    r = await api(
        app_url, "POST", f"/v1/projects/{pid}/versions/{vid}/feedback", other, json={"rating": 1}
    )
    assert r.status_code == 404
    assert (await api(app_url, "GET", "/v1/projects", other)).json()["items"] == []
    assert [p["id"] for p in (await api(app_url, "GET", "/v1/projects", org)).json()["items"]] == [
        pid
    ]


async def test_bad_requests_are_problems(app_url: str, unique: str, h: Any) -> None:
    api = h.api
    org = f"org_c{unique}"
    for body in (
        {},
        {"prompt": "x", "blueprint": {}},
        {"prompt": "crm", "tier": "T9"},
        {"prompt": "   "},
        {"blueprint": {"name": "x"}},
    ):
        r = await api(app_url, "POST", "/v1/generations", org, json=body)
        assert r.status_code == 422, (body, r.text)
        assert r.headers["content-type"].startswith("application/problem+json")
    r = await api(
        app_url, "POST", "/v1/generations", org, json={"prompt": "crm", "project_id": "prj_nope"}
    )
    assert r.status_code == 404
    assert (await api(app_url, "GET", "/v1/generations/gen_nope", org)).status_code == 404
