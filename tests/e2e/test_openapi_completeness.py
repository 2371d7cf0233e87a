"""The public API reference is complete: every operation of the gateway's merged
OpenAPI has a summary and a description written for a user, one product-area tag, an
example of what it takes and answers, and its error responses as problem+json. The
AsyncAPI the gateway publishes names no internal address."""

from __future__ import annotations

import json
import re
from collections.abc import Iterator
from typing import Any

import httpx
import jsonschema
import pytest
from referencing import Registry, Resource
from referencing.jsonschema import DRAFT202012

from qlp_gateway.openapi import merge
from qlp_gateway.routes import resolve as route_of
from qlp_kit.app import create_app
from qlp_kit.openapi_docs import TAGS, operations
from qlp_kit.permissions import PUBLIC, app_routes
from qlp_kit.problems import PROBLEM_JSON
from qlp_kit.serve import installed_services
from qlp_kit.serve import resolve as resolve_service

pytestmark = pytest.mark.e2e

#: The services whose every operation the test holds to the standard.
COMPLETE = frozenset({"gateway", "identity", "scheduler", "billing", "generation", "marketplace"})
_PARAM = re.compile(r"{[^}]+}")
_MONEY_KEYS = ("amount", "price", "cost", "balance", "total", "due", "fee")


def _settings(definition: Any) -> Any:
    return definition.settings_cls.model_validate(
        {
            "internal_auth_secret": "docs",
            "kafka_bootstrap_servers": "127.0.0.1:9",
            "mongodb_url": "mongodb://127.0.0.1:9",
        }
    )


@pytest.fixture(scope="module")
def built() -> tuple[dict[str, Any], dict[tuple[str, str], str | None]]:
    """The merged document as the gateway builds it, from every installed service's
    app (built, not started), and each operation's declared permission."""
    docs: dict[str, Any] = {}
    permissions: dict[tuple[str, str], str | None] = {}
    for name in sorted(installed_services()):
        definition = resolve_service(name)
        app = create_app(definition, _settings(definition))
        docs[name] = app.openapi()
        for r in app_routes(app):
            for m in r.methods:
                permissions[(m.lower(), r.path)] = r.permission
    return merge(docs), permissions


def _service(path: str) -> str:
    route = route_of(path)
    return route.service if route is not None and path.startswith("/v1/") else "gateway"


def _json_media(node: dict[str, Any] | None) -> Iterator[dict[str, Any]]:
    for media_type, media in ((node or {}).get("content") or {}).items():
        if media_type.endswith("json"):
            yield media


def _has_example(media: dict[str, Any], schemas: dict[str, Any]) -> bool:
    if "example" in media or media.get("examples"):
        return True
    ref = str((media.get("schema") or {}).get("$ref", "")).rsplit("/", 1)[-1]
    return bool(schemas.get(ref, {}).get("examples"))


def _money_too_large(node: Any, key: str = "") -> list[str]:
    if isinstance(node, dict):
        return [bad for k, v in node.items() for bad in _money_too_large(v, k)]
    if isinstance(node, list):
        return [bad for v in node for bad in _money_too_large(v, key)]
    if isinstance(node, int) and any(w in key.lower() for w in _MONEY_KEYS) and node > 10**9:
        return [f"{key}={node}"]
    return []


def _invalid_examples(doc: dict[str, Any], op: dict[str, Any]) -> list[str]:
    """Examples that do not validate against their own schema."""
    registry: Registry[Any] = Registry().with_resource(
        "urn:doc", Resource.from_contents({"components": doc["components"]}, DRAFT202012)
    )
    pairs: list[tuple[str, Any, Any]] = []
    for media in _json_media(op.get("requestBody")):
        if "example" in media:
            pairs.append(("request body", media.get("schema", {}), media["example"]))
    for status, response in (op.get("responses") or {}).items():
        for media in _json_media(response):
            if "example" in media:
                pairs.append((f"{status} answer", media.get("schema", {}), media["example"]))
    for param in op.get("parameters") or []:
        if "example" in param:
            pairs.append((f"parameter {param['name']}", param.get("schema", {}), param["example"]))
    out = []
    for what, schema, example in pairs:
        linked = json.loads(json.dumps(schema).replace('"#/components', '"urn:doc#/components'))
        error = jsonschema.exceptions.best_match(
            jsonschema.Draft202012Validator(linked, registry=registry).iter_errors(example)
        )
        if error is not None:
            out.append(f"{what} example is not valid: {error.message[:120]}")
    return out


def problems_of(doc: dict[str, Any], permissions: dict[tuple[str, str], str | None]) -> list[str]:
    schemas = doc["components"]["schemas"]
    tag_names = {t["name"] for t in TAGS}
    out: list[str] = []
    for method, path, op in operations(doc):
        if _service(path) not in COMPLETE:
            continue
        where = f"{method.upper()} {path}"
        summary = str(op.get("summary", "")).strip()
        description = str(op.get("description", "")).strip()
        if not summary:
            out.append(f"{where}: no summary")
        if len(description) < 30 or description == summary:
            out.append(f"{where}: no description written for a user")
        tags = op.get("tags") or []
        if len(tags) != 1 or tags[0] not in tag_names:
            out.append(f"{where}: tags {tags} are not one product area")
        body = op.get("requestBody")
        examples = 0
        for media in _json_media(body):
            if not _has_example(media, schemas):
                out.append(f"{where}: request body without an example")
            examples += 1
        responses = op.get("responses") or {}
        for status, response in responses.items():
            for media in _json_media(response):
                if status.startswith("2") and not _has_example(media, schemas):
                    out.append(f"{where}: {status} answer without an example")
                examples += 1
        examples += sum(1 for p in op.get("parameters") or [] if "example" in p)
        if not examples:
            out.append(f"{where}: no example at all")
        out += [f"{where}: {bad}" for bad in _invalid_examples(doc, op)]
        bad = _money_too_large(op)
        if bad:
            out.append(f"{where}: unrealistic money in examples: {bad[:3]}")
        wanted = {"429"}
        if permissions.get((method, path)) != PUBLIC and op.get("security") != []:
            wanted |= {"401", "403"}
        if _PARAM.search(path):
            wanted.add("404")
        if body:
            wanted |= {"400", "413", "422"}
        elif any(p.get("in") == "query" for p in op.get("parameters") or []):
            wanted.add("422")
        for status in sorted(wanted):
            response = responses.get(status)
            content = (response or {}).get("content") or {}
            ref = (content.get(PROBLEM_JSON) or {}).get("schema", {}).get("$ref")
            if ref != "#/components/schemas/Problem":
                out.append(f"{where}: {status} not documented as a problem+json Problem")
    return out


def test_every_operation_of_the_complete_services_is_documented(built: Any) -> None:
    doc, permissions = built
    assert "Problem" in doc["components"]["schemas"]
    missing = problems_of(doc, permissions)
    assert not missing, "\n".join(missing)


def test_tags_are_product_areas_with_agent_routes_apart(built: Any) -> None:
    doc, _ = built
    tags_of = {(m, p): op.get("tags", []) for m, p, op in operations(doc)}
    assert tags_of[("post", "/v1/auth/signup")] == ["Auth"]
    assert tags_of[("post", "/v1/api-keys")] == ["API keys"]
    assert tags_of[("get", "/v1/orgs/{org_id}/members")] == ["Organizations"]
    assert tags_of[("get", "/v1/gpu/offers")] == ["GPU jobs"]
    assert tags_of[("get", "/v1/providers")] == ["Providers"]
    assert tags_of[("post", "/v1/providers/{provider_id}/heartbeat")] == ["Agent"]
    assert tags_of[("get", "/v1/billing/balance")] == ["Billing"]
    assert {t["name"] for t in doc["tags"]} <= {t["name"] for t in TAGS}
    assert "gateway" not in {t["name"] for t in doc["tags"]}


def test_the_checker_catches_an_undocumented_operation(built: Any) -> None:
    doc, permissions = built
    broken = json.loads(json.dumps(doc))
    op = broken["paths"]["/v1/api-keys"]["post"]
    op["description"] = ""
    del op["responses"]["403"]
    op["requestBody"]["content"]["application/json"].pop("example", None)
    op["requestBody"]["content"]["application/json"]["schema"] = {"type": "object"}
    signup = broken["paths"]["/v1/auth/signup"]["post"]["requestBody"]["content"]
    signup["application/json"]["example"] = {"org_name": 5}
    found = problems_of(broken, permissions)
    assert any(
        f.startswith("POST /v1/auth/signup: request body example is not valid") for f in found
    )
    assert "POST /v1/api-keys: no description written for a user" in found
    assert "POST /v1/api-keys: 403 not documented as a problem+json Problem" in found
    assert "POST /v1/api-keys: request body without an example" in found


async def test_gateway_publishes_complete_docs_and_no_internal_addresses(
    qlp_platform: Any, qlp_infra: Any
) -> None:
    gw = qlp_platform.state.gateway_url
    assert gw, "no gateway installed"
    async with httpx.AsyncClient(base_url=gw, timeout=30) as c:
        openapi = (await c.get("/openapi.json")).json()
        asyncapi = await c.get("/asyncapi.json")
    assert asyncapi.status_code == 200
    text = asyncapi.text
    internal = {qlp_infra.kafka, *qlp_infra.kafka.split(","), "127.0.0.1", "localhost"}
    for svc in qlp_platform.state.services.values():
        internal.add(str(svc["url"]).removeprefix("http://"))
    leaked = sorted(a for a in internal if a and a in text)
    assert not leaked, f"/asyncapi.json names internal addresses: {leaked}"
    assert asyncapi.json()["asyncapi"].startswith("3.")
    served = {(m, p) for m, p, _ in operations(openapi)}
    assert ("post", "/v1/auth/signup") in served
    assert openapi["paths"]["/v1/auth/signup"]["post"]["description"]
