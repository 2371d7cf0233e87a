"""Input no database can store is a 422, not a 500 (pure logic + an in-memory ASGI app)."""

from fastapi import FastAPI
from fastapi.testclient import TestClient

from qlp_kit.inputs import StorableInputMiddleware, unstorable
from qlp_kit.problems import install_problem_handlers


def test_unstorable_values() -> None:
    assert unstorable({"a": [1, 2.5, "x", None, True, {"b": -(2**63)}]}) is None
    assert "64-bit" in (unstorable({"a": [2**63]}) or "")
    assert "$.a[0]" in (unstorable({"a": [2**70]}) or "")
    assert "surrogate" in (unstorable({"x": "ok\ud8d9"}) or "")
    assert "key" in (unstorable({"\udc00": 1}) or "")
    assert "NUL" in (unstorable({"a": {"x\x00": 1}}) or "")
    assert "finite" in (unstorable(float("nan")) or "")


def _app() -> FastAPI:
    app = FastAPI()
    install_problem_handlers(app)
    app.add_middleware(StorableInputMiddleware)

    @app.post("/echo")
    async def echo(body: dict) -> dict:  # type: ignore[type-arg]
        return body

    @app.get("/q")
    async def q(n: int = 0) -> dict[str, int]:
        return {"n": n}

    return app


def test_middleware_answers_422_and_passes_good_input() -> None:
    c = TestClient(_app())
    assert c.post("/echo", json={"a": 1}).json() == {"a": 1}
    r = c.post(
        "/echo", content=b'{"a": 9223372036854775808}', headers={"content-type": "application/json"}
    )
    assert r.status_code == 422 and r.json()["type"].endswith("/unstorable-value")
    r = c.post("/echo", content=b'{"a": "\\ud8d9"}', headers={"content-type": "application/json"})
    assert r.status_code == 422
    assert c.get("/q", params={"n": "5"}).json() == {"n": 5}
    assert c.get("/q", params={"n": "2470586007781906434536374582646931456"}).status_code == 422
    r = c.post("/echo", content=b"{broken", headers={"content-type": "application/json"})
    assert r.status_code == 400  # the route's own validation: malformed JSON
