"""The API reference every service publishes, complete in one place.

:func:`install_openapi_docs` post-processes a service's generated OpenAPI document:

- every operation is tagged by product area (``Auth``, ``Organizations``, ``API keys``,
  ``Billing``, ``GPU jobs``, ``Providers``, ``Generation``), with the provider agent's
  routes (``Agent``), operator routes (``Platform admin``) and service-to-service routes
  (``Internal``) apart;
- its real error responses are declared from what the route itself declares: a
  required permission answers 401 and 403, a path parameter 404, a JSON body 400
  (malformed), 413 and 422, query parameters 422; every one is RFC 9457
  ``application/problem+json`` against the shared ``Problem`` schema. A route adds
  the ones only it knows (409, 402) with ``responses=problems(409, 402)``;
- a request body, a JSON answer and each parameter without an example get one, built
  from the schema (its own ``examples`` first) with values a person would write:
  ``org_…`` ids, ``5000`` cents, ``USD``, ``A100``, ``eu-west``.

Summaries and descriptions stay the route's own (decorator ``summary=`` and the
endpoint's docstring): they are written for a user, never generated.
"""

from __future__ import annotations

import copy
import re
from collections.abc import Iterable, Mapping
from typing import Any

from qlp_kit.permissions import (
    INTERNAL,
    PLATFORM_ADMIN,
    PROVIDER_AGENT,
    PUBLIC,
    app_routes,
)
from qlp_kit.problems import PROBLEM_JSON, STATUS_TITLES

__all__ = [
    "PROBLEM_SCHEMA",
    "TAGS",
    "example_for",
    "install_openapi_docs",
    "problems",
    "tag_for",
]

METHODS = ("get", "put", "post", "delete", "patch")

#: Product areas, in the order a reader meets them, with what each is for.
TAGS: list[dict[str, str]] = [
    {"name": "Auth", "description": "Sign up, log in, refresh and revoke tokens, who you are."},
    {"name": "Organizations", "description": "Members, invitations, roles and the audit log."},
    {"name": "API keys", "description": "Long-lived, scoped credentials for scripts and agents."},
    {"name": "Billing", "description": "Plans, credits, usage, quotas, invoices and payouts."},
    {"name": "GPU jobs", "description": "Find offers, quote, submit and follow GPU jobs."},
    {"name": "Providers", "description": "GPU providers: their machines, offers and earnings."},
    {"name": "Generation", "description": "Generate projects from a description; versions."},
    {"name": "Marketplace", "description": "Find, sell, buy and review listings; downloads."},
    {"name": "Agent", "description": "Used by the provider agent (qlp-agent), not by people."},
    {"name": "Webhooks", "description": "Events the platform receives from payment providers."},
    {"name": "Platform admin", "description": "Operator routes: platform administrators only."},
    {"name": "Internal", "description": "Service-to-service routes; not routed by the gateway."},
]

_PREFIX_TAGS = (
    ("/v1/auth/", "Auth"),
    ("/v1/me", "Auth"),
    ("/.well-known/", "Auth"),
    ("/v1/orgs/", "Organizations"),
    ("/v1/api-keys", "API keys"),
    ("/v1/billing/webhooks/", "Webhooks"),
    ("/v1/billing", "Billing"),
    ("/v1/gpu/", "GPU jobs"),
    ("/v1/providers", "Providers"),
    ("/v1/generations", "Generation"),
    ("/v1/projects", "Generation"),
    ("/v1/patterns", "Generation"),
    ("/v1/marketplace", "Marketplace"),
)

#: RFC 9457 problem details, as every service answers them.
PROBLEM_SCHEMA: dict[str, Any] = {
    "title": "Problem",
    "type": "object",
    "description": "An RFC 9457 problem document (media type application/problem+json).",
    "required": ["type", "title", "status"],
    "properties": {
        "type": {
            "type": "string",
            "format": "uri",
            "description": "Stable URI of the kind of problem: branch on it.",
            "examples": ["https://qlp.dev/problems/validation-error"],
        },
        "title": {"type": "string", "examples": ["Request is not valid"]},
        "status": {"type": "integer", "examples": [422]},
        "detail": {
            "type": "string",
            "description": "What went wrong and what to fix, in words.",
            "examples": ["amount is an integer in minor units (cents): 50.00 USD is 5000"],
        },
        "instance": {"type": "string", "examples": ["/v1/billing/credits"]},
        "errors": {
            "type": "array",
            "description": "Every validation problem (422): where, what, and its kind.",
            "items": {
                "type": "object",
                "properties": {
                    "loc": {"type": "array", "items": {"type": "string"}},
                    "msg": {"type": "string"},
                    "type": {"type": "string"},
                },
            },
        },
    },
    "additionalProperties": True,
}

_WHEN = {
    400: "The request body is not valid JSON.",
    401: "No valid access token or API key (it is missing, expired or revoked).",
    402: "The organization's balance or payment method cannot pay for this.",
    403: "The caller's role or API key scopes lack the permission this route needs.",
    404: "The resource does not exist, or it belongs to another organization.",
    409: "The request conflicts with the resource's current state.",
    413: "The request body is larger than the gateway accepts.",
    422: "The request is well-formed but not valid; `detail` names the first problem.",
    429: "Too many requests for the organization's plan; retry after `Retry-After` seconds.",
}
_PROBLEM_TYPES = {
    400: "bad-request",
    401: "unauthenticated",
    402: "payment-required",
    403: "forbidden",
    404: "not-found",
    409: "conflict",
    413: "payload-too-large",
    422: "validation-error",
    429: "rate-limited",
    503: "service-unavailable",
}
_DETAILS = {
    400: "the request body is not valid JSON (Expecting value)",
    401: "the access token has expired: refresh it or use an API key",
    402: "the prepaid balance (0 USD) cannot cover 2400 USD; add credits first",
    403: "your role lacks the 'billing:write' permission",
    404: "resource not found",
    409: "the job has already finished",
    413: "the request body is larger than 1048576 bytes",
    422: "amount: amount is an integer in minor units (cents): 50.00 USD is 5000",
    429: "rate limit of 600 requests per 60 s reached; retry in 12 s",
}


def problem_response(status: int, description: str | None = None) -> dict[str, Any]:
    """The OpenAPI response object for a problem answer with ``status``."""
    return {
        "description": description or _WHEN.get(status, STATUS_TITLES.get(status, "Error")),
        "content": {
            PROBLEM_JSON: {
                "schema": {"$ref": "#/components/schemas/Problem"},
                "example": {
                    "type": f"https://qlp.dev/problems/{_PROBLEM_TYPES.get(status, 'error')}",
                    "title": STATUS_TITLES.get(status, "Error"),
                    "status": status,
                    "detail": _DETAILS.get(status, STATUS_TITLES.get(status, "error")),
                },
            }
        },
    }


def problems(*statuses: int, **descriptions: str) -> dict[int | str, dict[str, Any]]:
    """``responses=`` for a route's own error answers (the standard ones are added
    anyway): ``problems(409, 402)``, or a description of when: ``problems(**{"409":
    "the job has already finished"})``."""
    out: dict[int | str, dict[str, Any]] = {s: problem_response(s) for s in statuses}
    for key, text in descriptions.items():
        out[int(key.lstrip("_"))] = problem_response(int(key.lstrip("_")), text)
    return out


def tag_for(path: str, permission: str | None) -> str | None:
    """The product area of an operation (None: not a public API path)."""
    if permission == PROVIDER_AGENT:
        return "Agent"
    if permission == PLATFORM_ADMIN or "/admin/" in path:
        return "Platform admin"
    if permission == INTERNAL or path.startswith("/internal/"):
        return "Internal"
    for prefix, tag in _PREFIX_TAGS:
        if path.startswith(prefix):
            return tag
    return None


# -- examples ------------------------------------------------------------------------

_ID_PREFIXES = {
    "org": "org",
    "user": "usr",
    "key": "key",
    "api_key": "key",
    "job": "job",
    "provider": "prv",
    "machine": "mch",
    "offer": "ofr",
    "invoice": "inv",
    "payout": "po",
    "subscription": "sub",
    "generation": "gen",
    "gen": "gen",
    "project": "prj",
    "version": "ver",
    "txn": "txn",
    "transaction": "txn",
    "lease": "lse",
    "checkpoint": "ckp",
    "invitation": "inv",
    "event": "evt",
    "payment": "pay",
}
_ID_TAIL = "01jd8x3k2m9q4r7t5v6w8y0z1a"
_STRINGS = {
    "email": "ada@example.com",
    "password": "correct horse battery 42x",
    "new_password": "correct horse battery 42x",
    "org_name": "Acme Robotics",
    "name": "Acme Robotics",
    "display_name": "Ada Lovelace",
    "currency": "USD",
    "region": "eu-west",
    "gpu_model": "A100",
    "model": "A100",
    "role": "developer",
    "plan": "starter",
    "plan_id": "starter",
    "access_token": "eyJhbGciOiJFZERTQSIsImtpZCI6ImsxIn0.eyJzdWIiOiJ1c3JfMDEifQ.c2ln",
    "refresh_token": "rt_3f9c2a7be14d4c0e9a61f5b27d8e4c10",
    "token": "inv_tok_8d2f6a0c1e4b4f7a",
    "token_type": "Bearer",
    "key": "qlp_live_4f8a2c9e7b1d4e6f8a0c2e4b6d8f0a1c",
    "prefix": "qlp_live_4f8a",
    "image": "ghcr.io/acme/train:1.4",
    "command": "python -m qlp_agent.workloads.train",
    "description": "Nightly fine-tune of the support-ticket classifier",
    "reason": "requested by the user",
    "message": "epoch 3/10 loss=0.412",
    "line": "epoch 3/10 loss=0.412",
    "prompt": "A REST API for a veterinary clinic: owners, pets, appointments",
    "intent": "A REST API for a veterinary clinic: owners, pets, appointments",
    # opaque, as the kit's pages encode them (base64url of the last id)
    "cursor": "am9iXzAxamQ4eDNrMm05cTRyN3Q1djZ3OHkwejFh",
    "next_cursor": "am9iXzAxamQ4eDNrMm05cTRyN3Q1djZ3OHkwejFh",
    "sort": "-created_at",
    "url": "https://api.qlp.dev/v1/billing/shared/invoices/inv_01jd8x3k2m9q4r7t5v6w8y0z1a",
    "hostname": "gpu-node-7",
    "country": "Germany",
    "city": "Berlin",
    "number": "QLP-2026-000042",
    "meter": "gpu_seconds",
    "status": "running",
    "state": "active",
    "redundancy": "none",
    "scope": "gpu:jobs",
    "permission": "billing:write",
}
_FORMATS = {
    "date-time": "2026-03-14T09:30:00Z",
    "date": "2026-03-14",
    "email": "ada@example.com",
    "uri": "https://qlp.dev/docs",
    "uuid": "0f8d2c5e-3a1b-4c7d-9e6f-2b8a4d1c7e90",
    "password": "correct horse battery 42x",
}
_MONEY_WORDS = ("amount", "price", "cost", "cents", "minor", "total", "fee", "balance", "due")
_INTS = (
    (("gpu_count", "gpus", "count_gpus"), 2),
    (("limit", "page_size"), 20),
    (("minutes", "max_minutes", "duration_minutes"), 30),
    (("seconds", "_s", "duration"), 600),
    (("memory", "_mb"), 81920),
    (("_gb",), 80),
    (("quantity", "count", "total_count", "lines"), 3),
    (("status",), 200),
    (("index", "offset", "sequence", "seq", "attempt"), 1),
    (("percent", "utilization"), 87),
    (("bps",), 500),
    (("version",), 1),
    (("port",), 8080),
)


def _ref(schema: Mapping[str, Any], components: Mapping[str, Any]) -> Mapping[str, Any]:
    seen = 0
    while "$ref" in schema and seen < 20:
        name = str(schema["$ref"]).rsplit("/", 1)[-1]
        schema = components.get(name) or {}
        seen += 1
    return schema


def _optional_object(schema: Mapping[str, Any], components: Mapping[str, Any]) -> bool:
    """An optional nested object (``X | None``): left out of examples, which show what
    a caller usually sends, not every alternative at once."""
    options = [_ref(o, components) for o in schema.get("anyOf") or []]
    if not any(o.get("type") == "null" for o in options):
        return False
    return any(o.get("type") == "object" or "properties" in o for o in options)


def _string_pattern(value: str, schema: Mapping[str, Any]) -> str:
    """``value``, or the first alternative of a ``^(a|b)$`` pattern it does not match."""
    pattern = schema.get("pattern")
    if not isinstance(pattern, str) or re.search(pattern, value):
        return value
    alt = re.fullmatch(r"\^?\(?([\w:.-]+)(?:\|[\w:.|-]+)*\)?\$?", pattern)
    return alt.group(1) if alt else value


def _clamp(value: float, schema: Mapping[str, Any]) -> float:
    low = schema.get("minimum", schema.get("exclusiveMinimum"))
    high = schema.get("maximum", schema.get("exclusiveMaximum"))
    if low is not None and value < low:
        value = low + (1 if "exclusiveMinimum" in schema and "minimum" not in schema else 0)
    if high is not None and value > high:
        value = high
    return value


def _string(name: str, schema: Mapping[str, Any]) -> str:
    low = name.lower()
    fmt = schema.get("format")
    if isinstance(fmt, str) and fmt in _FORMATS:
        value = _FORMATS[fmt]
    elif low in _STRINGS:
        value = _STRINGS[low]
    elif low == "id" or low.endswith("_id") or low.endswith("_ids"):
        stem = low.removesuffix("_ids").removesuffix("_id")
        known = next((v for k, v in _ID_PREFIXES.items() if stem.endswith(k)), None)
        value = f"{known or stem[:3] or 'obj'}_{_ID_TAIL}"
    elif low.endswith("_at") or low.endswith("_time") or low in ("since", "until"):
        value = _FORMATS["date-time"]
    elif low.endswith("_url") or low.endswith("url"):
        value = "https://qlp.dev/docs"
    elif "email" in low:
        value = "ada@example.com"
    elif "currency" in low:
        value = "USD"
    elif "region" in low:
        value = "eu-west"
    elif "model" in low:
        value = "A100"
    elif "name" in low:
        value = "Acme Robotics"
    else:
        value = low.replace("_", " ") or "text"
    low_len, high_len = schema.get("minLength"), schema.get("maxLength")
    if isinstance(low_len, int) and len(value) < low_len:
        value = value + "x" * (low_len - len(value))
    if isinstance(high_len, int) and len(value) > high_len:
        value = value[:high_len]
    return _string_pattern(value, schema)


def _integer(name: str, schema: Mapping[str, Any]) -> int:
    low = name.lower()
    value = 1
    if any(w in low for w in _MONEY_WORDS):
        value = 5000
    else:
        for words, number in _INTS:
            if any(w == low or (w.startswith("_") and low.endswith(w)) or w in low for w in words):
                value = number
                break
    return int(_clamp(value, schema))


_SUFFIXES = re.compile(r"(Out|In|Response|Request|Public|View|Summary|Item|Create|Update)+$")


def _owner(title: str) -> str:
    """``JobOut`` → ``job``, ``ApiKeyCreated`` → ``api``: what an ``id`` field names."""
    stem = _SUFFIXES.sub("", title)
    words = re.findall(r"[A-Z][a-z0-9]*", stem)
    return words[0].lower() if words else ""


def example_for(
    schema: Mapping[str, Any],
    components: Mapping[str, Any],
    name: str = "",
    depth: int = 0,
) -> Any:
    """A realistic example of ``schema`` (``components``: the document's schemas)."""
    schema = _ref(schema, components)
    props = schema.get("properties") or {}
    if "price" in name.lower() and "amount" in props and "currency" in props:
        return {"amount": 120, "currency": "USD"}  # $1.20 per GPU-hour
    for key in ("examples", "example"):
        given = schema.get(key)
        if key == "examples" and isinstance(given, list) and given:
            return copy.deepcopy(given[0])
        if key == "example" and given is not None:
            return copy.deepcopy(given)
    if "const" in schema:
        return schema["const"]
    if isinstance(schema.get("enum"), list) and schema["enum"]:
        return schema["enum"][0]
    default = schema.get("default")
    if default is not None and not isinstance(default, dict | list):
        return default
    if depth > 8:
        return None
    for key in ("anyOf", "oneOf"):
        options = [o for o in schema.get(key) or [] if _ref(o, components).get("type") != "null"]
        if options:
            return example_for(options[0], components, name, depth + 1)
        if key in schema:
            return None
    if schema.get("allOf"):
        merged: dict[str, Any] = {}
        for part in schema["allOf"]:
            value = example_for(part, components, name, depth + 1)
            if isinstance(value, dict):
                merged.update(value)
            else:
                return value
        return merged
    kind = schema.get("type")
    if isinstance(kind, list):
        kind = next((k for k in kind if k != "null"), None)
    if kind == "object" or "properties" in schema:
        owner = _owner(str(schema.get("title", "")))
        required = set(schema.get("required") or [])
        out = {
            prop: example_for(
                sub, components, f"{owner}_id" if prop == "id" and owner else prop, depth + 1
            )
            for prop, sub in props.items()
            if prop in required or not _optional_object(sub, components)
        }
        extra = schema.get("additionalProperties")
        if not out and isinstance(extra, dict) and schema.get("minProperties"):
            out = {"generations": example_for(extra, components, "limit", depth + 1)}
        return out
    if kind == "array":
        item = example_for(schema.get("items") or {}, components, name.rstrip("s"), depth + 1)
        return [] if item is None else [item]
    if kind == "string":
        return _string(name, schema)
    if kind == "integer":
        return _integer(name, schema)
    if kind == "number":
        low = name.lower()
        value = 40.0 if low.endswith("_gb") else 1.2 if "price" in low or "rate" in low else 0.75
        return _clamp(value, schema)
    if kind == "boolean":
        return True
    return None


# -- the document --------------------------------------------------------------------

_PARAM = re.compile(r"{([^}:]+)")


def _has_example(media: Mapping[str, Any], components: Mapping[str, Any]) -> bool:
    if "example" in media or media.get("examples"):
        return True
    schema = _ref(media.get("schema") or {}, components)
    return bool(schema.get("examples")) or "example" in schema


def complete_document(
    doc: dict[str, Any], permissions: Mapping[tuple[str, str], str | None]
) -> dict[str, Any]:
    """Tags, standard problem responses and examples for every operation of ``doc``
    (``permissions``: (method, path) → the permission the route declares)."""
    components = doc.setdefault("components", {})
    schemas = components.setdefault("schemas", {})
    schemas.setdefault("Problem", copy.deepcopy(PROBLEM_SCHEMA))
    # FastAPI's own 422 schema is replaced by the problem document the kit answers.
    for stale in ("HTTPValidationError", "ValidationError"):
        schemas.pop(stale, None)
    for path, item in (doc.get("paths") or {}).items():
        for method in METHODS:
            op = item.get(method)
            if not isinstance(op, dict):
                continue
            permission = permissions.get((method.upper(), path))
            tag = tag_for(path, permission)
            if tag:
                op["tags"] = [tag]
            _complete_operation(op, path, method, permission, schemas)
    used = {t for _, _, op in operations(doc) for t in op.get("tags", [])}
    doc["tags"] = [t for t in TAGS if t["name"] in used]
    return doc


def _complete_operation(
    op: dict[str, Any],
    path: str,
    method: str,
    permission: str | None,
    schemas: Mapping[str, Any],
) -> None:
    responses: dict[str, Any] = op.setdefault("responses", {})
    params = op.get("parameters") or []
    body = op.get("requestBody")
    wanted: list[int] = []
    if permission != PUBLIC:
        wanted += [401, 403]
    if _PARAM.search(path):
        wanted.append(404)
    if body:
        wanted += [400, 413, 422]
    elif any(p.get("in") == "query" for p in params):
        wanted.append(422)
    wanted.append(429)
    for status in sorted(set(wanted)):
        current = responses.get(str(status))
        if current is None or PROBLEM_JSON not in (current.get("content") or {}):
            text = current.get("description") if current else None
            if status == 422 or text in (None, "", "Validation Error", "Successful Response"):
                text = None
            responses[str(status)] = problem_response(status, text)
    for code, response in responses.items():
        for media_type, media in (response.get("content") or {}).items():
            if media_type.endswith("json") and not _has_example(media, schemas):
                example = example_for(media.get("schema") or {}, schemas)
                if example is not None:
                    media["example"] = example
        if code == "422":
            response["content"] = {
                PROBLEM_JSON: (response.get("content") or {}).get(PROBLEM_JSON)
                or problem_response(422)["content"][PROBLEM_JSON]
            }
    if body:
        for media_type, media in (body.get("content") or {}).items():
            if media_type.endswith("json") and not _has_example(media, schemas):
                media["example"] = example_for(media.get("schema") or {}, schemas)
    for param in params:
        if "example" not in param and not param.get("examples"):
            value = example_for(param.get("schema") or {}, schemas, str(param.get("name", "")))
            if value is not None:
                param["example"] = value


def install_openapi_docs(app: Any) -> None:
    """Serve ``app``'s OpenAPI document completed as the module says (built once)."""
    generate = app.openapi

    def openapi() -> dict[str, Any]:
        if app.openapi_schema is None:
            doc = generate()
            permissions = {(m, r.path): r.permission for r in app_routes(app) for m in r.methods}
            app.openapi_schema = complete_document(doc, permissions)
        return dict(app.openapi_schema)

    app.openapi = openapi


def operations(doc: Mapping[str, Any]) -> Iterable[tuple[str, str, Mapping[str, Any]]]:
    """(method, path, operation) of every operation in ``doc``."""
    for path, item in (doc.get("paths") or {}).items():
        for method in METHODS:
            op = item.get(method)
            if isinstance(op, dict):
                yield method, path, op
