from __future__ import annotations

from datetime import UTC, datetime

from google.protobuf.timestamp_pb2 import Timestamp

from qlp.billing.v1 import events_pb2 as billing
from qlp_gateway.handlers import plan_from_event
from qlp_gateway.openapi import merge
from qlp_gateway.proxy import request_headers, response_headers
from qlp_kit.events import Event


def test_client_principal_and_hop_by_hop_headers_are_dropped() -> None:
    raw = [
        ("Host", "api"),
        ("Connection", "keep-alive, X-Secret-Hop"),
        ("X-Secret-Hop", "1"),
        ("Transfer-Encoding", "chunked"),
        ("X-QLP-Principal", "forged"),
        ("x-qlp-principal-sig", "forged"),
        ("X-Qlp-Principal-Ts", "1"),
        ("X-Qlp-Principal-Extra", "1"),
        ("Authorization", "Bearer t"),
        ("Content-Type", "application/json"),
        ("X-Forwarded-For", "1.2.3.4"),
        ("Accept", "*/*"),
    ]
    kept = request_headers(raw, keep_authorization=False)
    assert [k for k, _ in kept] == ["Content-Type", "Accept"]
    with_auth = request_headers(raw, keep_authorization=True)
    assert ("Authorization", "Bearer t") in with_auth


def test_response_headers_keep_content_headers() -> None:
    raw = [
        ("content-type", "application/octet-stream"),
        ("content-length", "3"),
        ("set-cookie", "a=1"),
        ("set-cookie", "b=2"),
        ("connection", "close"),
        ("server", "uvicorn"),
        ("date", "x"),
    ]
    assert response_headers(raw) == raw[:4]


def _svc(paths: dict[str, object], schemas: dict[str, object]) -> dict[str, object]:
    return {"openapi": "3.1.0", "paths": paths, "components": {"schemas": schemas}}


def test_openapi_merge_keeps_routed_v1_paths_and_renames_colliding_schemas() -> None:
    ref = {"$ref": "#/components/schemas/Item"}
    op = {"get": {"responses": {"200": {"content": {"application/json": {"schema": ref}}}}}}
    identity = _svc(
        {
            "/v1/me": op,
            "/v1/auth/login": {"post": {"responses": {}}},
            "/internal/v1/api-keys/verify": {"post": {}},
            "/healthz": {"get": {}},
            "/v1/billing/steal": {"get": {}},  # not identity's prefix: dropped
        },
        {"Item": {"type": "object", "properties": {"a": {"type": "string"}}}, "Same": {"x": 1}},
    )
    bill = _svc(
        {"/v1/billing/items": op},
        {"Item": {"type": "object", "properties": {"b": {"type": "integer"}}}, "Same": {"x": 1}},
    )
    doc = merge({"identity": identity, "billing": bill})
    assert set(doc["paths"]) == {
        "/.well-known/jwks.json",
        "/v1/me",
        "/v1/auth/login",
        "/v1/billing/items",
    }
    schemas = doc["components"]["schemas"]
    # Services merge in name order: billing keeps "Item", identity's is renamed.
    assert {"Item", "identity_Item", "Same"} <= set(schemas)
    assert "b" in schemas["Item"]["properties"] and "a" in schemas["identity_Item"]["properties"]

    def ref_of(path: str) -> str:
        content = doc["paths"][path]["get"]["responses"]["200"]["content"]
        return str(content["application/json"]["schema"]["$ref"])

    assert ref_of("/v1/billing/items") == "#/components/schemas/Item"
    assert ref_of("/v1/me") == "#/components/schemas/identity_Item"
    assert doc["paths"]["/v1/me"]["get"]["tags"] == ["identity"]
    assert doc["paths"]["/v1/auth/login"]["post"]["security"] == []
    assert "security" not in doc["paths"]["/v1/me"]["get"]
    assert doc["security"] == [{"bearer": []}]
    assert merge({})["paths"].keys() == {"/.well-known/jwks.json"}


def _event(msg: object) -> Event:
    return Event(
        id="e1",
        type="t",
        source="s",
        time=datetime.now(UTC),
        org_id="org_1",
        subject="",
        message=msg,
    )


def test_plan_from_billing_events() -> None:
    ts = Timestamp()
    act = billing.SubscriptionActivated(org_id="org_1", plan_id="starter", activated_at=ts)
    chg = billing.SubscriptionChanged(org_id="org_1", old_plan_id="starter", new_plan_id="pro")
    now = billing.SubscriptionCanceled(org_id="org_1", at_period_end=False)
    later = billing.SubscriptionCanceled(org_id="org_1", at_period_end=True)
    assert plan_from_event(_event(act)) == "starter"
    assert plan_from_event(_event(chg)) == "pro"
    assert plan_from_event(_event(now)) == "free"
    assert plan_from_event(_event(later)) is None
    assert plan_from_event(_event(billing.InvoiceIssued(org_id="org_1"))) is None
