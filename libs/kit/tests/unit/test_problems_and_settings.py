"""problem+json rendering and fail-fast settings (no servers)."""

import pytest
from fastapi import FastAPI
from fastapi.testclient import TestClient
from pydantic import BaseModel

from qlp_kit.problems import PROBLEM_JSON, Problem, install_problem_handlers
from qlp_kit.settings import ServiceSettings, load_settings


def _app() -> FastAPI:
    app = FastAPI()
    install_problem_handlers(app)

    class Body(BaseModel):
        n: int

    @app.post("/things")
    async def things(body: Body) -> dict[str, int]:
        if body.n == 409:
            raise Problem(409, "Conflict", "already there", type_="thing-exists", thing=body.n)
        if body.n == 500:
            raise RuntimeError("boom")
        return {"n": body.n}

    return app


def test_problem_documents() -> None:
    c = TestClient(_app(), raise_server_exceptions=False)
    r = c.post("/things", json={"n": 409})
    assert r.status_code == 409 and r.headers["content-type"] == PROBLEM_JSON
    assert r.json()["type"].endswith("/thing-exists") and r.json()["thing"] == 409
    r = c.post("/things", json={"n": "x"})
    assert r.status_code == 422 and r.json()["errors"][0]["loc"][-1] == "n"
    r = c.post("/things", content=b"{not json", headers={"content-type": "application/json"})
    assert r.status_code == 400 and r.json()["title"] == "Malformed JSON"
    r = c.get("/nope")
    assert r.status_code == 404 and r.headers["content-type"] == PROBLEM_JSON
    r = c.post("/things", json={"n": 500})
    assert r.status_code == 500 and "boom" not in r.text


def test_missing_settings_fail_fast(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.delenv("KAFKA_BOOTSTRAP_SERVERS", raising=False)
    monkeypatch.delenv("MONGODB_URL", raising=False)
    with pytest.raises(SystemExit) as e:
        load_settings(ServiceSettings)
    assert e.value.code == 2
    err = capsys.readouterr().err
    assert "KAFKA_BOOTSTRAP_SERVERS" in err and "MONGODB_URL" in err


def test_settings_from_env(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("KAFKA_BOOTSTRAP_SERVERS", "k:9092")
    monkeypatch.setenv("MONGODB_URL", "mongodb://m")
    s = load_settings(ServiceSettings, service_name="billing")
    assert s.kafka_bootstrap_servers == "k:9092" and s.database_name == "qlp_billing"
