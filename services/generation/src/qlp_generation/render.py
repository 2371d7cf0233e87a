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
)

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


def pins() -> list[tuple[str, str]]:
    found = []
    for name in PINNED:
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


def render(bp: Blueprint) -> dict[str, bytes]:
    """Every file of the project (path → content), deterministic for one blueprint."""
    entities = _complete(bp)
    plural_of = {e.name: plural(snake(e.name)) for e in entities}
    view = []
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
    env = jinja2.Environment(
        trim_blocks=True,
        lstrip_blocks=True,
        keep_trailing_newline=True,
        undefined=jinja2.StrictUndefined,
        autoescape=False,  # noqa: S701 - renders Python, Markdown and Makefiles, not HTML
    )
    env.filters["py"] = repr  # Python literals in .py templates (True, None, ...)
    ctx = {
        "bp": bp,
        "entities": view,
        "writers": writers,
        "test_entities": test_entities,
        "email_fields": email_fields,
        "protected": protected,
        "protected_plural": protected_plural,
        "ref_case": ref_case,
        "email_case": email_case,
        "pins": pins(),
        "pack_version": pack().version,
    }
    files: dict[str, bytes] = {}
    for path, source in _templates(_root()):
        name = ".gitignore" if path == "gitignore" else path
        files[name] = env.from_string(source).render(ctx).encode("utf-8")
    return files
