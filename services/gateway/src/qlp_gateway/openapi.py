"""One OpenAPI document for the public API: every service's ``/v1`` paths (only those
the gateway routes to that service) and their components, plus the gateway's own.
Components whose names collide between services with different shapes are renamed
``<service>_<name>`` in that service's part. A service that is down is just missing
until the next refresh."""

from __future__ import annotations

import asyncio
import copy
import time
from collections.abc import Mapping
from typing import Any

import httpx
import structlog

from qlp_gateway.routes import resolve
from qlp_kit.openapi_docs import PROBLEM_SCHEMA, TAGS, operations, problem_response

log = structlog.get_logger("qlp.gateway.openapi")

COMPONENT_KINDS = ("schemas", "responses", "parameters", "requestBodies", "headers", "examples")
METHODS = ("get", "put", "post", "delete", "options", "head", "patch", "trace")

GATEWAY_PATHS: dict[str, Any] = {
    "/.well-known/jwks.json": {
        "get": {
            "tags": ["Auth"],
            "summary": "The public keys that verify access tokens (JWKS)",
            "description": (
                "The JSON Web Key Set whose keys sign the platform's access tokens. Verify a "
                "token yourself with any JOSE library: pick the key whose `kid` matches the "
                "token header's. Cached for 5 minutes; keys rotate with an overlap."
            ),
            "operationId": "gateway_jwks",
            "security": [],
            "responses": {
                "200": {
                    "description": "JSON Web Key Set",
                    "content": {
                        "application/json": {
                            "schema": {"type": "object"},
                            "example": {
                                "keys": [
                                    {
                                        "kty": "OKP",
                                        "crv": "Ed25519",
                                        "kid": "k1",
                                        "use": "sig",
                                        "alg": "EdDSA",
                                        "x": "11qYAYKxCrfVS_7TyWQHOg7hcvPapiMlrwIaaPcHURo",
                                    }
                                ]
                            },
                        }
                    },
                },
                "429": problem_response(429),
                "503": problem_response(503, "identity is unreachable and no keys are cached"),
            },
        }
    }
}


def _rewrite_refs(node: Any, renames: Mapping[str, str]) -> Any:
    if isinstance(node, dict):
        out = {}
        for k, v in node.items():
            if k == "$ref" and isinstance(v, str) and v in renames:
                out[k] = renames[v]
            else:
                out[k] = _rewrite_refs(v, renames)
        return out
    if isinstance(node, list):
        return [_rewrite_refs(v, renames) for v in node]
    return node


def merge(docs: Mapping[str, Mapping[str, Any]], *, version: str = "0.1.0") -> dict[str, Any]:
    """Merge service documents (name → OpenAPI dict) into the public one."""
    paths: dict[str, Any] = copy.deepcopy(GATEWAY_PATHS)
    components: dict[str, dict[str, Any]] = {}
    for service in sorted(docs):
        doc = docs[service]
        own_components: Mapping[str, Any] = doc.get("components") or {}
        renames: dict[str, str] = {}
        for kind in COMPONENT_KINDS:
            for name, value in (own_components.get(kind) or {}).items():
                existing = components.get(kind, {}).get(name)
                if existing is not None and existing != value:
                    renames[f"#/components/{kind}/{name}"] = f"#/components/{kind}/{service}_{name}"
        kept = False
        for path, item in (doc.get("paths") or {}).items():
            route = resolve(path)
            if route is None or route.service != service or not path.startswith("/v1/"):
                continue
            item = _rewrite_refs(copy.deepcopy(dict(item)), renames)
            for method in METHODS:
                op = item.get(method)
                if not isinstance(op, dict):
                    continue
                op.setdefault("tags", [service])
                if route.public:
                    op["security"] = []
            paths[path] = item
            kept = True
        if not kept:
            continue
        for kind in COMPONENT_KINDS:
            for name, value in (own_components.get(kind) or {}).items():
                ref = f"#/components/{kind}/{name}"
                target = renames.get(ref, ref).rsplit("/", 1)[-1]
                components.setdefault(kind, {})[target] = _rewrite_refs(
                    copy.deepcopy(value), renames
                )
    components.setdefault("schemas", {}).setdefault("Problem", PROBLEM_SCHEMA)
    used = {t for _, _, op in operations({"paths": paths}) for t in op.get("tags", [])}
    tags = [t for t in TAGS if t["name"] in used]
    components.setdefault("securitySchemes", {})["bearer"] = {
        "type": "http",
        "scheme": "bearer",
        "description": "An access token (JWT) from /v1/auth/login, or an API key (qlp_...).",
    }
    return {
        "openapi": "3.1.0",
        "info": {
            "title": "QuantumLayer Platform API",
            "version": version,
            "description": (
                "The public API of the QuantumLayer Platform, served by the gateway. "
                "Authenticate with `Authorization: Bearer <token>`: an access token from "
                "POST /v1/auth/signup or /v1/auth/login is valid 15 minutes (refresh it at "
                "POST /v1/auth/refresh), an API key (`qlp_…`, POST /v1/api-keys) until it "
                "is revoked or expires. Money is integer minor units: "
                '`{"amount": 5000, "currency": "USD"}` is 50.00 USD. '
                "Errors are RFC 9457 problem+json (`detail` says what to fix; malformed "
                "JSON is 400, a body that fails validation 422). Rate limits are announced "
                "in RateLimit and RateLimit-Policy headers (IETF draft); POST accepts an "
                "Idempotency-Key header."
            ),
        },
        "servers": [{"url": "/"}],
        "security": [{"bearer": []}],
        "tags": tags,
        "paths": dict(sorted(paths.items())),
        "components": components,
    }


class OpenApiCache:
    """Fetches every service's document at most once per ``ttl_s`` (lazily)."""

    def __init__(
        self,
        client: httpx.AsyncClient,
        upstreams: Mapping[str, str],
        *,
        ttl_s: float = 60.0,
        timeout_s: float = 2.0,
        version: str = "0.1.0",
    ) -> None:
        self.client = client
        self.upstreams = dict(upstreams)
        self.ttl_s = ttl_s
        self.timeout_s = timeout_s
        self.version = version
        self._doc: dict[str, Any] | None = None
        self._at = 0.0
        self._lock = asyncio.Lock()

    async def _fetch(self, name: str, url: str) -> tuple[str, dict[str, Any] | None]:
        try:
            resp = await self.client.get(f"{url}/openapi.json", timeout=self.timeout_s)
            resp.raise_for_status()
            doc = resp.json()
            return name, doc if isinstance(doc, dict) else None
        except (httpx.HTTPError, ValueError) as exc:
            log.info("openapi of a service is missing", service=name, error=str(exc))
            return name, None

    async def document(self, own: Mapping[str, Any] | None = None) -> dict[str, Any]:
        """The merged document; ``own`` is the gateway's own (its operator routes)."""
        async with self._lock:
            if self._doc is None or time.monotonic() - self._at > self.ttl_s:
                results = await asyncio.gather(
                    *(self._fetch(n, u) for n, u in self.upstreams.items())
                )
                docs = {n: d for n, d in results if d is not None}
                if own is not None:
                    docs["gateway"] = dict(own)
                self._doc = merge(docs, version=self.version)
                self._at = time.monotonic()
            return self._doc
