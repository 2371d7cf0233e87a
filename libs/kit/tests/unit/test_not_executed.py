"""Problems given before an endpoint executed carry ``x-qlp-not-executed: 1`` (the
gateway then keeps no idempotent answer for them); problems of the endpoint do not."""

from fastapi import FastAPI
from fastapi.testclient import TestClient
from pydantic import BaseModel

from qlp_kit.inputs import StorableInputMiddleware
from qlp_kit.problems import NOT_EXECUTED_HEADER, Problem, install_problem_handlers


def _app() -> tuple[FastAPI, list[int]]:
    app = FastAPI()
    install_problem_handlers(app)
    app.add_middleware(StorableInputMiddleware)
    ran: list[int] = []

    class Body(BaseModel):
        n: int

    @app.post("/things")
    async def things(body: Body) -> dict[str, int]:
        ran.append(body.n)
        if body.n == 409:
            raise Problem(409, "Conflict", "already there")
        if body.n == 404:
            raise Problem(404, "Not found", "no such thing")
        return {"n": body.n}

    return app, ran


def test_validation_failures_are_marked_not_executed() -> None:
    app, ran = _app()
    c = TestClient(app)
    for bad in ({"n": "x"}, {}, {"n": 2**70}):
        r = c.post("/things", json=bad)
        assert r.status_code == 422, r.text
        assert r.headers[NOT_EXECUTED_HEADER] == "1"
    r = c.post("/things", content=b"{not json", headers={"content-type": "application/json"})
    assert r.status_code == 400 and r.headers[NOT_EXECUTED_HEADER] == "1"
    # No route, or not this method: the framework answers before any endpoint.
    assert c.post("/nothing", json={"n": 1}).headers[NOT_EXECUTED_HEADER] == "1"
    wrong_method = c.put("/things", json={"n": 1})
    assert wrong_method.status_code == 405 and wrong_method.headers[NOT_EXECUTED_HEADER] == "1"
    assert ran == []


def test_answers_of_the_endpoint_are_not_marked() -> None:
    app, ran = _app()
    c = TestClient(app)
    ok = c.post("/things", json={"n": 1})
    conflict = c.post("/things", json={"n": 409})
    missing = c.post("/things", json={"n": 404})
    assert ok.status_code == 200 and conflict.status_code == 409 and missing.status_code == 404
    for r in (ok, conflict, missing):
        assert NOT_EXECUTED_HEADER not in r.headers
    assert ran == [1, 409, 404]
