"""The optional LLM port against a local stand-in chat-completions server: off by
default, a valid answer refines the blueprint (never its identity), anything else keeps
the deterministic blueprint and says why."""

from __future__ import annotations

from typing import Any

from qlp_generation.blueprint import extract
from qlp_generation.llm import LlmConfig, refine
from qlp_generation.settings import GenerationSettings


def _cfg(url: str) -> LlmConfig:
    return LlmConfig(url, "stand-in-model", "sk-test", 10)


async def test_off_by_default_and_nothing_is_sent(llm_standin: Any) -> None:
    s = GenerationSettings(kafka_bootstrap_servers="k:9092", mongodb_url="mongodb://m")
    cfg = LlmConfig(s.llm_url, s.llm_model)
    bp = extract("a CRM for a sales team", "T1")
    out = await refine(cfg, "a CRM", bp)
    assert not cfg.enabled and out.blueprint == bp and out.note == "off"
    assert llm_standin.requests == []


async def test_a_valid_answer_refines_but_keeps_identity(llm_standin: Any) -> None:
    bp = extract("a CRM for a sales team", "T1")
    proposal = bp.model_dump(mode="json")
    proposal["features"] = [*bp.features, "approvals"]
    proposal["regulations"] = ["gdpr"]
    proposal["rules"] = ["a deal above 10000 needs a manager's approval"]
    proposal["entities"][0]["fields"].append({"name": "linkedin", "type": "str", "required": False})
    proposal["name"], proposal["pattern_id"] = "renamed", "helpdesk"
    llm_standin.answer("```json\n" + __import__("json").dumps(proposal) + "\n```")
    out = await refine(_cfg(llm_standin.url), "a CRM for a sales team", bp)
    assert out.used and out.note == "refined by stand-in-model"
    r = out.blueprint
    assert "approvals" in r.features and r.regulations == ["gdpr"] and r.rules
    assert any(f.name == "linkedin" for f in r.entities[0].fields)
    assert (r.name, r.pattern_id) == (bp.name, bp.pattern_id)
    sent = llm_standin.requests[0]
    assert sent["path"] == "/v1/chat/completions" and sent["auth"] == "Bearer sk-test"
    assert (
        sent["body"]["model"] == "stand-in-model"
        and "a CRM" in sent["body"]["messages"][1]["content"]
    )


async def test_invalid_answers_keep_the_deterministic_blueprint(llm_standin: Any) -> None:
    bp = extract("helpdesk tickets", "T1")
    bad = bp.model_dump(mode="json")
    bad["entities"][0]["fields"].append({"name": "x", "type": "blob"})
    for content, status, why in [
        ("no json here", 200, "no JSON object"),
        (bad, 200, "entities.0.fields.5.type"),
        ({"features": ["Not An Ident"]}, 200, "features"),
        ("{}", 500, "500"),
    ]:
        llm_standin.answer(content, status)
        out = await refine(_cfg(llm_standin.url), "helpdesk", bp)
        assert not out.used and out.blueprint == bp, content
        assert why in out.note, out.note


async def test_an_unreachable_endpoint_keeps_the_blueprint() -> None:
    bp = extract("helpdesk tickets", "T1")
    out = await refine(_cfg("http://127.0.0.1:9/v1"), "helpdesk", bp)
    assert not out.used and "kept the deterministic blueprint" in out.note
