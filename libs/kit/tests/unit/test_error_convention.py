"""One error convention: malformed JSON 400, schema failures 422 with a detail in
words (the first problem) and every problem in ``errors``; consistent titles; money
is integer minor units in a settled currency (no servers)."""

from typing import Literal

from fastapi import FastAPI, Query
from fastapi.testclient import TestClient
from pydantic import BaseModel

from qlp_kit.inputs import StorableInputMiddleware
from qlp_kit.money import AMOUNT_HINT, SETTLED_CURRENCIES, MoneyIn, PositiveMoneyIn
from qlp_kit.problems import (
    NOT_EXECUTED_HEADER,
    PROBLEM_JSON,
    STATUS_TITLES,
    install_problem_handlers,
)


class Body(BaseModel):
    name: str
    price: PositiveMoneyIn


def _client() -> TestClient:
    app = FastAPI()
    install_problem_handlers(app)
    app.add_middleware(StorableInputMiddleware)

    @app.post("/things")
    async def things(body: Body) -> dict[str, int]:
        return {"amount": body.price.amount}

    @app.get("/things")
    async def listing(
        status: Literal["open", "paid"] | None = None,
        limit: int = Query(default=10, ge=1, le=100),
    ) -> dict[str, str]:
        return {"status": status or ""}

    return TestClient(app)


def test_malformed_json_is_400_and_not_executed() -> None:
    r = _client().post(
        "/things", content=b'{"name": ', headers={"content-type": "application/json"}
    )
    assert r.status_code == 400 and r.headers["content-type"] == PROBLEM_JSON
    doc = r.json()
    assert doc["title"] == "Malformed JSON" and doc["type"].endswith("/malformed-json")
    assert "not valid JSON" in doc["detail"]
    assert r.headers[NOT_EXECUTED_HEADER] == "1"


def test_validation_is_422_with_first_problem_in_words() -> None:
    r = _client().post("/things", json={"price": {"amount": 5000}})
    assert r.status_code == 422 and r.headers[NOT_EXECUTED_HEADER] == "1"
    doc = r.json()
    assert doc["title"] == STATUS_TITLES[422] == "Request is not valid"
    assert doc["detail"] == "name is required"
    assert doc["detail"] != "see errors"
    r = _client().post("/things", json={"name": 1, "price": {"amount": "x"}})
    doc = r.json()
    assert len(doc["errors"]) == 2
    assert doc["detail"].startswith("name: ") and "(and 1 more in errors)" in doc["detail"]


def test_string_or_fractional_amount_says_minor_units() -> None:
    for bad in ("50.00", 50.5, 50.0, "5000", True):
        r = _client().post("/things", json={"name": "a", "price": {"amount": bad}})
        assert r.status_code == 422, (bad, r.text)
        assert r.json()["detail"] == f"price.amount: {AMOUNT_HINT}"
        assert AMOUNT_HINT == "amount is an integer in minor units (cents): 50.00 USD is 5000"
    ok = _client().post("/things", json={"name": "a", "price": {"amount": 5000}})
    assert ok.status_code == 200 and ok.json() == {"amount": 5000}


def test_only_settled_currencies_and_the_schema_lists_them() -> None:
    assert SETTLED_CURRENCIES == ("USD",)
    for cur in ("EUR", "JPY", "usd", "XXX"):
        r = _client().post("/things", json={"name": "a", "price": {"amount": 1, "currency": cur}})
        assert r.status_code == 422, cur
        assert "platform settles USD" in r.json()["detail"]
    for model in (MoneyIn, PositiveMoneyIn):
        props = model.model_json_schema()["properties"]
        assert props["currency"]["enum"] == ["USD"]
        assert props["amount"]["type"] == "integer"


def test_unknown_query_filter_value_is_422() -> None:
    c = _client()
    assert c.get("/things", params={"status": "paid"}).status_code == 200
    r = c.get("/things", params={"status": "bogus"})
    assert r.status_code == 422
    assert r.json()["detail"].startswith("query parameter status: ")
    r = c.get("/things", params={"limit": "0"})
    assert r.status_code == 422 and r.json()["detail"].startswith("query parameter limit: ")


def test_framework_titles_are_the_standard_ones() -> None:
    c = _client()
    assert c.get("/nothing").json()["title"] == "Not found"
    assert c.put("/things").json()["title"] == "Method not allowed"
