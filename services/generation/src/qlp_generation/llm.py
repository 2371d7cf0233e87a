"""The optional LLM port: any OpenAI-compatible chat-completions endpoint (set by URL
and model) may refine the deterministic blueprint (more fields, features, regulations,
business rules). Off unless ``QLP_GENERATION_LLM_URL`` is set.

The model never decides alone: its answer must be a valid :class:`Blueprint` (else the
deterministic one is kept, and why is recorded), it cannot rename the project or change
the pattern it was matched to, and the quality gate still decides whether a version is
published.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Any

import httpx
from pydantic import ValidationError

from qlp_generation.blueprint import Blueprint

SYSTEM = (
    "You refine the blueprint of an application to generate. Answer with ONE JSON object: "
    "the complete blueprint, same keys and types as the one given (entities with typed "
    "fields: str, text, int, money, bool, date, datetime, email, ref with target; roles; "
    "features; business_model; monetization; regulations among gdpr, hipaa, sox; scale; "
    "rules: short business rules in plain English). Keep name, title, domain, pattern_id "
    "and pattern_version. No prose, no code fences."
)


@dataclass(frozen=True)
class LlmConfig:
    url: str
    model: str
    api_key: str = ""
    timeout_s: float = 30.0

    @property
    def enabled(self) -> bool:
        return bool(self.url and self.model)


@dataclass(frozen=True)
class Refinement:
    blueprint: Blueprint
    used: bool
    note: str

    def record(self) -> dict[str, Any]:
        return {"used": self.used, "note": self.note}


def _content(body: Any) -> str:
    try:
        return str(body["choices"][0]["message"]["content"])
    except (KeyError, IndexError, TypeError):
        raise ValueError("the answer has no choices[0].message.content") from None


def _json_object(text: str) -> dict[str, Any]:
    text = text.strip()
    if text.startswith("```"):  # tolerate a fenced answer
        text = text.strip("`").removeprefix("json").strip()
    start, end = text.find("{"), text.rfind("}")
    if start < 0 or end < start:
        raise ValueError("the answer holds no JSON object")
    obj = json.loads(text[start : end + 1])
    if not isinstance(obj, dict):
        raise ValueError("the answer is not a JSON object")
    return obj


async def refine(
    cfg: LlmConfig, prompt: str, bp: Blueprint, client: httpx.AsyncClient | None = None
) -> Refinement:
    """The refined blueprint, or the given one with the reason it was kept."""
    if not cfg.enabled:
        return Refinement(bp, False, "off")
    request = {
        "model": cfg.model,
        "temperature": 0,
        "messages": [
            {"role": "system", "content": SYSTEM},
            {
                "role": "user",
                "content": f"Request: {prompt}\n\nBlueprint:\n{bp.model_dump_json()}",
            },
        ],
    }
    headers = {"authorization": f"Bearer {cfg.api_key}"} if cfg.api_key else {}
    url = cfg.url.rstrip("/") + "/chat/completions"
    own = client is None
    http = client or httpx.AsyncClient(timeout=cfg.timeout_s)
    try:
        r = await http.post(url, json=request, headers=headers, timeout=cfg.timeout_s)
        r.raise_for_status()
        proposal = _json_object(_content(r.json()))
    except (httpx.HTTPError, ValueError) as exc:
        return Refinement(bp, False, f"kept the deterministic blueprint: {exc}"[:300])
    finally:
        if own:
            await http.aclose()
    # the model may not rename the project or move it to another pattern
    fixed = {
        k: getattr(bp, k) for k in ("name", "title", "domain", "pattern_id", "pattern_version")
    }
    proposal = {**bp.model_dump(mode="json"), **proposal, **fixed}
    proposal["explanation"] = (bp.explanation + f"; refined by {cfg.model}")[:500]
    try:
        refined = Blueprint.model_validate(proposal)
    except ValidationError as exc:
        first = exc.errors()[0]
        where = ".".join(str(p) for p in first["loc"])
        return Refinement(
            bp, False, f"kept the deterministic blueprint: {where}: {first['msg']}"[:300]
        )
    return Refinement(refined, True, f"refined by {cfg.model}")
