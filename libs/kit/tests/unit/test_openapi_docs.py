"""The kit completes every service's OpenAPI: problem+json error responses from what
a route declares, product-area tags, realistic examples."""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter
from pydantic import BaseModel, Field

from qlp_kit.app import ServiceDefinition, create_app
from qlp_kit.money import MoneyIn
from qlp_kit.openapi_docs import example_for, problems
from qlp_kit.permissions import GPU_JOBS, PROVIDER_AGENT, public, require
from qlp_kit.problems import PROBLEM_JSON
from qlp_kit.settings import ServiceSettings


class JobIn(BaseModel):
    gpu_count: int = Field(ge=1, le=64)
    max_price_per_gpu_hour: MoneyIn
    region: str


class JobOut(BaseModel):
    id: str
    org_id: str
    cost: MoneyIn
    created_at: str


router = APIRouter()


@router.post("/v1/gpu/jobs", response_model=JobOut, dependencies=[require(GPU_JOBS)])
async def submit(body: JobIn) -> Any:
    """Submit a job."""


@router.post(
    "/v1/gpu/jobs/{job_id}/cancel",
    response_model=JobOut,
    dependencies=[require(GPU_JOBS)],
    responses=problems(409),
)
async def cancel(job_id: str) -> Any:
    """Cancel a job."""


@router.post("/v1/providers/{provider_id}/heartbeat", dependencies=[require(PROVIDER_AGENT)])
async def heartbeat(provider_id: str) -> None:
    """Heartbeat."""


@router.get("/v1/billing/plans", dependencies=[public()])
async def plans(limit: int = 20) -> list[str]:
    """Plans."""
    return []


def _doc() -> dict[str, Any]:
    settings = ServiceSettings.model_validate(
        {
            "service_name": "t",
            "internal_auth_secret": "x",
            "kafka_bootstrap_servers": "127.0.0.1:9",
            "mongodb_url": "mongodb://127.0.0.1:9",
        }
    )
    doc: dict[str, Any] = create_app(
        ServiceDefinition("t", ServiceSettings, routers=[router]), settings
    ).openapi()
    return doc


def _is_problem(response: dict[str, Any]) -> bool:
    media = response["content"][PROBLEM_JSON]
    return bool(media["schema"] == {"$ref": "#/components/schemas/Problem"} and media["example"])


def test_error_responses_follow_what_the_route_declares() -> None:
    doc = _doc()
    submit_op = doc["paths"]["/v1/gpu/jobs"]["post"]
    assert {"400", "401", "403", "413", "422", "429"} <= set(submit_op["responses"])
    assert "404" not in submit_op["responses"]
    cancel_op = doc["paths"]["/v1/gpu/jobs/{job_id}/cancel"]["post"]
    assert {"401", "403", "404", "409", "429"} <= set(cancel_op["responses"])
    for status in ("401", "403", "404", "409", "429"):
        assert _is_problem(cancel_op["responses"][status]), status
    plans_op = doc["paths"]["/v1/billing/plans"]["get"]
    assert "401" not in plans_op["responses"] and "403" not in plans_op["responses"]
    assert _is_problem(plans_op["responses"]["422"])
    assert "HTTPValidationError" not in doc["components"]["schemas"]
    assert doc["components"]["schemas"]["Problem"]["required"] == ["type", "title", "status"]


def test_tags_are_product_areas() -> None:
    doc = _doc()
    assert doc["paths"]["/v1/gpu/jobs"]["post"]["tags"] == ["GPU jobs"]
    assert doc["paths"]["/v1/providers/{provider_id}/heartbeat"]["post"]["tags"] == ["Agent"]
    assert doc["paths"]["/v1/billing/plans"]["get"]["tags"] == ["Billing"]
    assert [t["name"] for t in doc["tags"]] == ["Billing", "GPU jobs", "Agent"]


def test_examples_are_realistic() -> None:
    doc = _doc()
    body = doc["paths"]["/v1/gpu/jobs"]["post"]["requestBody"]["content"]["application/json"]
    assert body["example"] == {
        "gpu_count": 2,
        "max_price_per_gpu_hour": {"amount": 120, "currency": "USD"},
        "region": "eu-west",
    }
    answer = doc["paths"]["/v1/gpu/jobs"]["post"]["responses"]["200"]["content"]
    example = answer["application/json"]["example"]
    assert example["id"].startswith("job_") and example["org_id"].startswith("org_")
    assert example["cost"] == {"amount": 5000, "currency": "USD"}
    limit = doc["paths"]["/v1/billing/plans"]["get"]["parameters"][0]
    assert limit["example"] == 20


def test_example_respects_bounds_and_given_examples() -> None:
    assert example_for({"type": "integer", "maximum": 8}, {}, "gpu_count") == 2
    assert example_for({"type": "integer", "minimum": 10}, {}, "x") == 10
    assert example_for({"type": "string", "examples": ["given"]}, {}, "email") == "given"
    assert example_for({"type": "string", "format": "email"}, {}, "to") == "ada@example.com"
    assert example_for({"type": "string", "enum": ["queued", "running"]}, {}, "status") == "queued"


def test_optional_objects_are_left_out_and_patterns_respected() -> None:
    components = {"Pool": {"type": "object", "properties": {"namespace": {"type": "string"}}}}
    schema = {
        "type": "object",
        "required": ["kind"],
        "properties": {
            "kind": {"type": "string", "pattern": "^(provider|creator)$"},
            "pool": {"anyOf": [{"$ref": "#/components/schemas/Pool"}, {"type": "null"}]},
            "note": {"anyOf": [{"type": "string"}, {"type": "null"}]},
        },
    }
    assert example_for(schema, components) == {"kind": "provider", "note": "note"}
