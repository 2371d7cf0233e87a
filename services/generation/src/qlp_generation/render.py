"""Blueprint → project: the files of a generated application, rendered from a
versioned pattern pack of Jinja2 templates (``packs/<pack>/``)."""

from __future__ import annotations

import json
from dataclasses import dataclass
from functools import cache
from importlib import metadata, resources
from importlib.resources.abc import Traversable
from typing import Any

import jinja2
from jinja2.sandbox import ImmutableSandboxedEnvironment

from qlp_generation.blueprint import Blueprint, EntitySpec, FieldSpec, plural, snake

PACK = "fastapi_mongo"
#: What the generated project's requirements pin: the versions installed here, which
#: are the versions its tests ran with in the quality gate.
PINNED = (
    "fastapi",
    "starlette",
    "pydantic",
    "pydantic-core",
    "pymongo",
    "dnspython",
    "uvicorn",
    "httpx",
    "httpcore",
    "anyio",
    "pytest",
    "pytest-asyncio",
    "ruff",
    "nx-27017",
    "pyyaml",
)
#: Pinned only when a module needs them (HIPAA field encryption).
PINNED_HIPAA = ("cryptography", "cffi", "pycparser")
#: Features the pack turns into code (others stay recorded in the blueprint only).
GENERATED_FEATURES = (
    "search",
    "ratings",
    "exports",
    "file_uploads",
    "approvals",
    "notifications",
    "reminders",
    "waitlists",
    "refunds",
)
#: Replica and autoscaling values of the generated chart per blueprint scale.
SCALES: dict[str, dict[str, Any]] = {
    "small": {
        "replicas": 1,
        "autoscaling": False,
        "min": 1,
        "max": 2,
        "cpu": 80,
        "cpu_request": "100m",
        "memory": "256Mi",
    },
    "medium": {
        "replicas": 2,
        "autoscaling": True,
        "min": 2,
        "max": 6,
        "cpu": 70,
        "cpu_request": "250m",
        "memory": "512Mi",
    },
    "large": {
        "replicas": 3,
        "autoscaling": True,
        "min": 3,
        "max": 20,
        "cpu": 60,
        "cpu_request": "500m",
        "memory": "1Gi",
    },
}
_SCALE_NOTES = {
    "small": "one replica, no autoscaling",
    "medium": "two replicas, autoscaling to six on CPU",
    "large": "three replicas, autoscaling to twenty on CPU",
}
#: Plans of the generated billing module per monetization (price in cents a month,
#: records a tenant may create a month; -1 is no cap). The first is the default.
PLANS: dict[str, dict[str, dict[str, int]]] = {
    "subscription": {
        "starter": {"price_monthly": 1900, "records_per_month": 1000},
        "business": {"price_monthly": 9900, "records_per_month": -1},
    },
    "freemium": {
        "free": {"price_monthly": 0, "records_per_month": 200},
        "pro": {"price_monthly": 2900, "records_per_month": -1},
    },
    "transaction_fee": {
        "standard": {"price_monthly": 0, "records_per_month": -1},
    },
}
FEE_BPS = 250
#: Files rendered only when the blueprint asks for their module.
_ONLY = {
    "app/phi.py": "hipaa",
    "tests/test_phi.py": "hipaa",
    "app/features.py": "feats",
    "tests/test_features.py": "feats",
    "app/approvals.py": "approvals_on",
    "tests/test_approvals.py": "approvals_on",
    "app/billing.py": "billing_on",
    "tests/test_billing.py": "billing_on",
}

_PYTYPE = {
    "str": "Short",
    "text": "Text",
    "int": "int",
    "money": "Money",
    "bool": "bool",
    "date": "dt.date",
    "datetime": "dt.datetime",
    "email": "Email",
    "ref": "Ref",
}
_SAMPLE: dict[str, Any] = {
    "str": "sample",
    "text": "some longer text",
    "int": 3,
    "money": 1250,
    "bool": True,
    "date": "2026-01-31",
    "datetime": "2026-01-31T09:30:00Z",
    "email": "someone@example.com",
}
_BAD: dict[str, Any] = {
    "str": "",
    "text": "",
    "int": "three",
    "money": -5,
    "bool": "maybe",
    "date": "31/01/2026",
    "datetime": "soon",
    "email": "not-an-email",
    "ref": "",
}
_PATCH: dict[str, Any] = {
    "str": "changed",
    "text": "changed text",
    "int": 7,
    "money": 999,
    "bool": False,
    "email": "changed@example.com",
}


@dataclass(frozen=True)
class Pack:
    id: str
    version: str
    description: str


@cache
def pack() -> Pack:
    raw = json.loads(_root().joinpath("pack.json").read_text("utf-8"))
    return Pack(raw["id"], raw["version"], raw["description"])


def _root() -> Traversable:
    return resources.files("qlp_generation").joinpath(f"packs/{PACK}")


def _templates(root: Traversable, prefix: str = "") -> list[tuple[str, str]]:
    out: list[tuple[str, str]] = []
    for item in sorted(root.iterdir(), key=lambda t: t.name):
        rel = f"{prefix}{item.name}"
        if item.is_dir():
            out += _templates(item, rel + "/")
        elif item.name.endswith(".j2"):
            out.append((rel[: -len(".j2")], item.read_text("utf-8")))
    return out


def builtin_templates() -> dict[str, str]:
    """The built-in pack's templates as a pack holds them (``<path>.j2`` → source)."""
    return {f"{path}.j2": source for path, source in _templates(_root())}


def pins(extra: tuple[str, ...] = ()) -> list[tuple[str, str]]:
    found = []
    for name in (*PINNED, *extra):
        try:
            found.append((name, metadata.version(name)))
        except metadata.PackageNotFoundError:
            continue
    return found


def _complete(bp: Blueprint) -> list[EntitySpec]:
    """The entities as rendered: GDPR needs someone's email, HIPAA a protected field."""
    entities = [e.model_copy(deep=True) for e in bp.entities]
    first = entities[0]
    if "gdpr" in bp.regulations and not any(f.type == "email" for e in entities for f in e.fields):
        first.fields.append(FieldSpec(name="subject_email", type="email", required=False))
    if "hipaa" in bp.regulations and not any(f.protected for e in entities for f in e.fields):
        first.fields.append(
            FieldSpec(name="protected_notes", type="text", required=False, protected=True)
        )
    return entities


def render(
    bp: Blueprint, tier: str = "T1", templates: dict[str, str] | None = None
) -> dict[str, bytes]:
    """Every file of the project (path → content), deterministic for one blueprint and
    tier. T3 adds a second service (``activity/``) that consumes the API service's
    events through a versioned contract (``contracts/``), each with its own chart.

    ``templates`` (``<path>.j2`` → source) is a marketplace template's pack instead of
    the built-in one: it comes from an untrusted creator, so it renders in Jinja2's
    immutable sandbox (no attribute starting with ``_``, no mutation of the context, no
    unsafe callables) with the same context; a template that tries is a SecurityError,
    which fails the build. Its output still ships only when the quality gate passes."""
    entities = _complete(bp)
    plural_of = {e.name: plural(snake(e.name)) for e in entities}
    view: list[dict[str, Any]] = []
    test_entities: dict[str, Any] = {}
    email_fields: dict[str, list[str]] = {}
    protected: dict[str, list[str]] = {}
    ref_case = None
    email_case = None
    for e in entities:
        p = plural_of[e.name]
        refs = {f.name: plural_of[f.target] for f in e.fields if f.target}
        view.append(
            {
                "name": e.name,
                "plural": p,
                "refs": refs,
                "fields": [{**f.model_dump(), "pytype": _PYTYPE[f.type]} for f in e.fields],
            }
        )
        sample = {f.name: _SAMPLE[f.type] for f in e.fields if f.type != "ref"}
        required = [f for f in e.fields if f.required]
        bad_field = required[0] if required else e.fields[0]
        bad = {**sample, bad_field.name: _BAD[bad_field.type]}
        patchable = next((f for f in e.fields if f.type in _PATCH), None)
        patch = [patchable.name, _PATCH[patchable.type]] if patchable else [e.fields[0].name, None]
        test_entities[p] = {"sample": sample, "bad": bad, "refs": refs, "patch": patch}
        email_fields[p] = [f.name for f in e.fields if f.type == "email"]
        protected[p] = [f.name for f in e.fields if f.protected]
        if refs and ref_case is None:
            field, target = next(iter(refs.items()))
            ref_case = [p, field, target]
        if email_fields[p] and email_case is None:
            email_case = [p, email_fields[p][0]]
    writers = [r for r in bp.roles[:2]] if len(bp.roles) > 2 else bp.roles[:1]
    protected_plural = next((p for p, fs in protected.items() if fs), None)
    feats = [f for f in GENERATED_FEATURES if f in bp.features]
    refund_case = next(
        (
            [plural_of[e.name], f.name]
            for e in entities
            for f in e.fields
            if f.type == "money" and f.required and not f.protected
        ),
        None,
    )
    if refund_case is None and "refunds" in feats:
        feats.remove("refunds")
    search_case = None
    for e, v in zip(entities, view, strict=True):
        searchable = tuple(
            f.name for f in e.fields if f.type in ("str", "text") and not f.protected
        )
        v["search"] = searchable if "search" in feats else ()
        if searchable and search_case is None:
            search_case = [v["plural"], searchable[0]]
    if "waitlists" in feats:
        email_fields = {**email_fields, "waitlists": ["email"]}
    approval_case = next(
        (
            [plural_of[e.name], f.name, _PATCH[f.type]]
            for e in entities
            for f in e.fields
            if f.type in _PATCH and not f.protected
        ),
        None,
    )
    approvals_on = bool(approval_case) and ("approvals" in feats or "sox" in bp.regulations)
    if approvals_on:
        # a requested change may carry someone's address: GDPR export and erasure cover it
        paths = sorted({f"changes.{f}" for fs in email_fields.values() for f in fs})
        email_fields = {**email_fields, "approvals": paths}
    if "approvals" in feats and not approvals_on:
        feats.remove("approvals")
    feats_code = [f for f in feats if f not in ("search", "approvals")]
    hipaa = "hipaa" in bp.regulations
    billing_on = bp.monetization in PLANS
    env_cls = jinja2.Environment if templates is None else ImmutableSandboxedEnvironment
    env = env_cls(
        trim_blocks=True,
        lstrip_blocks=True,
        keep_trailing_newline=True,
        undefined=jinja2.StrictUndefined,
        autoescape=False,  # renders Python, Markdown and Makefiles, not HTML
    )
    env.filters["py"] = repr  # Python literals in .py templates (True, None, ...)
    ctx: dict[str, Any] = {
        "bp": bp,
        "entities": view,
        "writers": writers,
        "test_entities": test_entities,
        "email_fields": email_fields,
        "protected": protected,
        "protected_plural": protected_plural,
        "ref_case": ref_case,
        "email_case": email_case,
        "pins": pins(PINNED_HIPAA if hipaa else ()),
        "pack_version": pack().version,
        "feats": feats_code,
        "generated_features": feats,
        "primary": view[0]["plural"],
        "refund_case": refund_case,
        "search_case": search_case,
        "approval_case": approval_case,
        "approvals_on": approvals_on,
        "export_columns": {
            v["plural"]: [f["name"] for f in v["fields"] if not f["protected"]] for v in view
        },
        "hipaa": hipaa,
        "phi_roles": writers,
        "billing_on": billing_on,
        "plans": PLANS.get(bp.monetization, {}),
        "fee_bps": FEE_BPS,
        "scale": SCALES[bp.scale],
        "scale_note": _SCALE_NOTES[bp.scale],
        "t3": tier == "T3",
        "plurals": [v["plural"] for v in view],
    }
    ctx["email_fields"] = email_fields
    db_name = bp.name.replace("-", "_")
    charts: dict[str, dict[str, Any]] = {
        "chart": {
            "name": bp.name,
            "database": db_name,
            "description": bp.title,
            "extra_env": {},
        }
    }
    if ctx["t3"]:
        act = f"{bp.name}-activity"
        charts = {
            f"charts/{bp.name}": {
                **charts["chart"],
                "extra_env": {"ACTIVITY_URL": f"http://{act}:8000"},
            },
            f"charts/{act}": {
                "name": act,
                "database": f"{db_name}_activity",
                "description": f"{bp.title}: activity service",
                "extra_env": {},
            },
        }
    ctx["charts"] = list(charts)
    files: dict[str, bytes] = {}
    sources = (
        _templates(_root())
        if templates is None
        else sorted((p.removesuffix(".j2"), src) for p, src in templates.items())
    )
    for path, source in sources:
        if path in _ONLY and not ctx[_ONLY[path]]:
            continue
        if path.startswith("t3/"):
            if not ctx["t3"]:
                continue
            path = path.removeprefix("t3/")
        template = env.from_string(source)
        if path.startswith("chart/"):
            for folder, chart in charts.items():
                out = folder + path.removeprefix("chart")
                files[out] = template.render({**ctx, "chart": chart}).encode("utf-8")
            continue
        name = ".gitignore" if path == "gitignore" else path
        files[name] = template.render(ctx).encode("utf-8")
    return files
