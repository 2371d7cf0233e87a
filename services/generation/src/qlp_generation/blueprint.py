"""The blueprint (what to build) and the deterministic extractor that turns an English
request into one. No model is involved: domains, features, business models and
regulations come from the pattern library's data (``library/domains.json``); requests
outside every domain get a generic blueprint from their nouns (``inflect``)."""

from __future__ import annotations

import json
import keyword
import re
from dataclasses import dataclass
from functools import cache
from importlib import resources
from typing import Any, Literal

import inflect
from pydantic import BaseModel, Field, field_validator, model_validator

Tier = Literal["T0", "T1", "T2", "T3"]
FieldType = Literal["str", "text", "int", "money", "bool", "date", "datetime", "email", "ref"]
BusinessModel = Literal["saas", "marketplace", "ecommerce", "fintech"]
Monetization = Literal["subscription", "transaction_fee", "freemium", "none"]
Regulation = Literal["gdpr", "hipaa", "sox"]
Scale = Literal["small", "medium", "large"]

_IDENT = re.compile(r"^[a-z][a-z0-9_]{0,39}$")
_ENTITY = re.compile(r"^[A-Z][A-Za-z0-9]{0,39}$")
#: Names a generated project reserves for itself (routes, modules, model fields).
_RESERVED = {"id", "org_id", "created_at", "updated_at", "self", "model_config", "schema"}


class FieldSpec(BaseModel):
    name: str
    type: FieldType
    required: bool = True
    #: Protected (e.g. PHI under HIPAA): encrypted at rest, every read audited.
    protected: bool = False
    #: For ``ref`` fields: the entity referred to.
    target: str | None = None

    @field_validator("name")
    @classmethod
    def _name(cls, v: str) -> str:
        if not _IDENT.match(v) or keyword.iskeyword(v) or v in _RESERVED:
            raise ValueError(f"field name {v!r} must be snake_case, not a reserved word")
        return v

    @model_validator(mode="after")
    def _ref(self) -> FieldSpec:
        if (self.type == "ref") != (self.target is not None):
            raise ValueError(f"field {self.name!r}: a ref field (and only one) names a target")
        return self


class EntitySpec(BaseModel):
    name: str
    fields: list[FieldSpec] = Field(min_length=1, max_length=40)

    @field_validator("name")
    @classmethod
    def _name(cls, v: str) -> str:
        if not _ENTITY.match(v) or keyword.iskeyword(v.lower()):
            raise ValueError(f"entity name {v!r} must be CamelCase letters and digits")
        return v

    @model_validator(mode="after")
    def _unique(self) -> EntitySpec:
        names = [f.name for f in self.fields]
        if len(names) != len(set(names)):
            raise ValueError(f"entity {self.name}: field names repeat")
        return self


class Blueprint(BaseModel):
    """What a generation builds; returned with every job and editable (regenerating
    from an edited blueprint is the "what if" branch)."""

    name: str = Field(pattern=r"^[a-z][a-z0-9-]{1,39}$")
    #: Rendered into code and docs: letters, digits, spaces and plain punctuation only.
    title: str = Field(pattern=r"^[A-Za-z0-9][A-Za-z0-9 ,.&()/+-]{0,119}$")
    domain: str = Field(pattern=r"^[a-z][a-z0-9-]{0,39}$")
    #: The pattern that was chosen and why (evidence when several fit).
    pattern_id: str = Field(pattern=r"^[a-z][a-z0-9-]{0,39}$")
    pattern_version: str = Field(pattern=r"^[0-9A-Za-z.+-]{1,20}$")
    explanation: str = Field(default="", max_length=500)
    entities: list[EntitySpec] = Field(min_length=1, max_length=12)
    roles: list[str] = Field(min_length=1, max_length=10)
    features: list[str] = Field(default_factory=list, max_length=20)
    business_model: BusinessModel = "saas"
    monetization: Monetization = "subscription"
    regulations: list[Regulation] = Field(default_factory=list)
    scale: Scale = "small"
    #: Business rules in plain English (from the optional LLM port or an edited
    #: blueprint): documented in the generated README, not enforced in code.
    rules: list[str] = Field(default_factory=list, max_length=20)

    @field_validator("rules")
    @classmethod
    def _rules(cls, v: list[str]) -> list[str]:
        for r in v:
            if not r.strip() or len(r) > 200 or any(c in r for c in "\n\r`<>{}|"):
                raise ValueError("a rule is one line of plain text, at most 200 characters")
        return v

    @field_validator("roles", "features")
    @classmethod
    def _idents(cls, v: list[str]) -> list[str]:
        for r in v:
            if not _IDENT.match(r):
                raise ValueError(f"{r!r} must be snake_case")
        return list(dict.fromkeys(v))

    @field_validator("roles")
    @classmethod
    def _admin_first(cls, v: list[str]) -> list[str]:
        """The generated app's first role administers it (and writes)."""
        return ["admin", *[r for r in v if r != "admin"]]

    @model_validator(mode="after")
    def _refs(self) -> Blueprint:
        names = [e.name for e in self.entities]
        if len(names) != len(set(names)):
            raise ValueError("entity names repeat")
        for e in self.entities:
            for f in e.fields:
                if f.target is not None and f.target not in names:
                    raise ValueError(f"{e.name}.{f.name} refers to unknown entity {f.target!r}")
        return self


@dataclass(frozen=True)
class Pattern:
    id: str
    title: str
    keywords: tuple[str, ...]
    entities: tuple[dict[str, Any], ...]
    roles: tuple[str, ...]
    features: tuple[str, ...]
    business_model: str
    monetization: str
    regulations: tuple[str, ...]


@dataclass(frozen=True)
class Library:
    version: str
    patterns: tuple[Pattern, ...]
    features: dict[str, tuple[str, ...]]
    business_models: dict[str, tuple[str, ...]]
    monetizations: dict[str, tuple[str, ...]]
    regulations: dict[str, tuple[str, ...]]
    scale: dict[str, tuple[str, ...]]

    def pattern(self, pattern_id: str) -> Pattern | None:
        return next((p for p in self.patterns if p.id == pattern_id), None)


@cache
def library() -> Library:
    raw = json.loads(
        resources.files("qlp_generation").joinpath("library/domains.json").read_text("utf-8")
    )

    def kw(d: dict[str, list[str]]) -> dict[str, tuple[str, ...]]:
        return {k: tuple(v) for k, v in d.items()}

    return Library(
        version=raw["version"],
        patterns=tuple(
            Pattern(
                id=d["id"],
                title=d["title"],
                keywords=tuple(d["keywords"]),
                entities=tuple(d["entities"]),
                roles=tuple(d["roles"]),
                features=tuple(d.get("features", ())),
                business_model=d["business_model"],
                monetization=d["monetization"],
                regulations=tuple(d.get("regulations", ())),
            )
            for d in raw["domains"]
        ),
        features=kw(raw["features"]),
        business_models=kw(raw["business_models"]),
        monetizations=kw(raw["monetizations"]),
        regulations=kw(raw["regulations"]),
        scale=kw(raw["scale"]),
    )


def _norm(text: str) -> str:
    return " " + re.sub(r"[^a-z0-9]+", " ", text.lower()).strip() + " "


def _hits(text: str, phrases: tuple[str, ...]) -> int:
    """How many of the phrases occur in the normalised text, as whole words."""
    return sum(1 for p in phrases if _norm(p) in text)


def parse_field(spec: str) -> FieldSpec:
    """``name:type`` with ``?`` (optional) and ``!`` (protected) suffixes, or
    ``name:ref:Entity``."""
    parts = spec.split(":")
    name, typ = parts[0], parts[1]
    flags = ""
    while typ and typ[-1] in "?!":
        flags, typ = flags + typ[-1], typ[:-1]
    target = parts[2] if typ == "ref" else None
    return FieldSpec.model_validate(
        {
            "name": name,
            "type": typ,
            "required": "?" not in flags,
            "protected": "!" in flags,
            "target": target,
        }
    )


_p = inflect.engine()
_STOP = set(
    """a an the and or but for with without of to in on at by from into onto my our your their
    me us we i you they it its this that these those be is are was were am build make create
    want need app apps application platform system tool software service saas website site
    simple small big new online web mobile manage managing management track tracking keep
    let lets allow allows help helps where which who whom what when how can could should would
    will shall may might must please like also just each every all any some many more most
    people users user customers customer team teams company business businesses thing things
    using use used so such via per them then than there here do does did done get gets""".split()
)


def _nouns(prompt: str) -> list[str]:
    """Candidate entity nouns of a request outside every domain: content words,
    singular, in order of appearance, without duplicates."""
    words = re.findall(r"[a-z]+", prompt.lower())
    out: list[str] = []
    for i, w in enumerate(words):
        if i and words[i - 1] == "to":
            continue  # an infinitive: "to log", "to track"
        if w in _STOP or len(w) < 3 or keyword.iskeyword(w):
            continue
        if w.endswith(("ing", "ed", "ly")):
            continue  # verbs and adverbs
        single = _p.singular_noun(w)
        noun = single if isinstance(single, str) and single else w
        if noun not in out:
            out.append(noun)
    return out


def _camel(word: str) -> str:
    return "".join(p.capitalize() for p in re.split(r"[_\s-]+", word) if p)


def _slug(text: str) -> str:
    s = re.sub(r"[^a-z0-9]+", "-", text.lower()).strip("-")
    s = s[:40].strip("-")
    if not s or not s[0].isalpha():
        s = "app-" + s
    return s[:40].strip("-") or "app"


@dataclass(frozen=True)
class Candidate:
    pattern: Pattern
    score: int


def candidates(prompt: str) -> list[Candidate]:
    """Patterns whose keywords occur in the request, best match first."""
    text = _norm(prompt)
    found = [Candidate(p, _hits(text, p.keywords)) for p in library().patterns]
    return sorted((c for c in found if c.score > 0), key=lambda c: -c.score)


def _pick(found: dict[str, tuple[str, ...]], text: str) -> list[str]:
    return [k for k, phrases in found.items() if _hits(text, phrases)]


def extract(
    prompt: str,
    tier: Tier = "T1",
    evidence: dict[str, float] | None = None,
) -> Blueprint:
    """The blueprint of an English request. ``evidence`` (pattern id → measured gate
    pass rate) breaks ties between patterns that fit equally well."""
    lib = library()
    text = _norm(prompt)
    found = candidates(prompt)
    evidence = evidence or {}
    features: list[str]
    if found:
        top = found[0].score
        tied = [c for c in found if c.score == top]
        best = max(tied, key=lambda c: (evidence.get(c.pattern.id, 0.0), -tied.index(c)))
        pat = best.pattern
        why = f"matched {top} keyword(s) of {pat.id}"
        if len(tied) > 1:
            others = ", ".join(c.pattern.id for c in tied if c is not best)
            why += f"; tied with {others}, chosen by gate pass rate {evidence.get(pat.id, 0.0):.2f}"
        entities = [
            EntitySpec(name=e["name"], fields=[parse_field(f) for f in e["fields"]])
            for e in pat.entities
        ]
        roles = list(pat.roles)
        features = list(pat.features)
        business_model, monetization = pat.business_model, pat.monetization
        regulations = list(pat.regulations)
        domain, title, pattern_id = pat.id, pat.title, pat.id
    else:
        nouns = _nouns(prompt)[:3] or ["record"]
        first = _camel(nouns[0])
        entities = []
        for i, n in enumerate(nouns):
            fields = [parse_field("name:str"), parse_field("description:text?")]
            fields.append(parse_field("status:str"))
            if i > 0:
                fields.append(FieldSpec(name=f"{_snake(first)}_id", type="ref", target=first))
            entities.append(EntitySpec(name=_camel(n), fields=fields))
        roles = ["admin", "member"]
        features = []
        business_model, monetization = "saas", "subscription"
        regulations = []
        domain, pattern_id = "generic", "generic"
        title = " ".join(n.capitalize() for n in nouns) + " app"
        why = "no domain pattern matched; entities from the request's nouns"
    for feat in _pick(lib.features, text):
        if feat not in features:
            features.append(feat)
    bm = _pick(lib.business_models, text)
    if bm:
        business_model = bm[0]
    mon = _pick(lib.monetizations, text)
    if mon:
        monetization = mon[0]
    for reg in _pick(lib.regulations, text):
        if reg not in regulations:
            regulations.append(reg)
    scale = next(iter(_pick(lib.scale, text)), "small")
    if tier == "T0":
        entities = entities[:1]
        entities[0] = EntitySpec(
            name=entities[0].name, fields=[f for f in entities[0].fields if f.type != "ref"]
        )
    if "hipaa" in regulations:
        _protect_health_fields(entities)
    return Blueprint(
        name=_slug(title),
        title=title,
        domain=domain,
        pattern_id=pattern_id,
        pattern_version=lib.version,
        explanation=why,
        entities=entities,
        roles=roles,
        features=features,
        business_model=business_model,  # type: ignore[arg-type]
        monetization=monetization,  # type: ignore[arg-type]
        regulations=sorted(set(regulations)),  # type: ignore[arg-type]
        scale=scale,  # type: ignore[arg-type]
    )


_HEALTH = {"diagnosis", "notes", "date_of_birth", "condition", "medication", "symptoms"}


def _protect_health_fields(entities: list[EntitySpec]) -> None:
    for e in entities:
        for f in e.fields:
            if f.name in _HEALTH and f.type in ("str", "text", "date"):
                f.protected = True


def _snake(name: str) -> str:
    return re.sub(r"(?<!^)(?=[A-Z])", "_", name).lower()


def snake(name: str) -> str:
    """``PurchaseOrder`` → ``purchase_order``."""
    return _snake(name)


def plural(name: str) -> str:
    """``purchase_order`` → ``purchase_orders`` (inflect)."""
    head, _, last = name.rpartition("_")
    p = _p.plural_noun(last)
    word = p if isinstance(p, str) and p else last + "s"
    return f"{head}_{word}" if head else word
