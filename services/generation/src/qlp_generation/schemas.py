from __future__ import annotations

from datetime import datetime
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, model_validator

from qlp_generation.blueprint import Blueprint, Tier


class GenerationIn(BaseModel):
    model_config = ConfigDict(extra="forbid")
    prompt: str | None = Field(default=None, max_length=4000)
    blueprint: Blueprint | None = None
    tier: Tier = "T1"
    project_id: str | None = Field(default=None, max_length=64)
    parent_version_id: str | None = Field(default=None, max_length=64)
    #: A marketplace template (its listing id) to build from instead of the built-in
    #: pack: the org must hold an entitlement to it (or be its creator).
    template_listing_id: str | None = Field(
        default=None, min_length=3, max_length=64, pattern=r"^[A-Za-z0-9_-]+$"
    )

    @model_validator(mode="after")
    def _one(self) -> GenerationIn:
        if (self.prompt is None) == (self.blueprint is None):
            raise ValueError("give exactly one of prompt or blueprint")
        return self


class GenerationOut(BaseModel):
    id: str
    status: Literal["queued", "running", "completed", "failed"]
    stage: str
    progress: int
    tier: Tier
    project_id: str
    version_id: str | None = None
    blueprint: dict[str, Any]
    #: The quality gate's report; null until the gate has run (never invented).
    gate: dict[str, Any] | None = None
    failure: dict[str, Any] | None = None
    #: The optional LLM port's part: ``{used, note}``; null when it is off.
    llm: dict[str, Any] | None = None
    #: The marketplace template it was built from: ``{listing_id, version}``; null for
    #: the built-in pack.
    template: dict[str, Any] | None = None
    created_at: datetime
    updated_at: datetime


class ProjectOut(BaseModel):
    id: str
    name: str
    versions: int
    created_at: datetime


class ProjectList(BaseModel):
    items: list[ProjectOut]
    next_cursor: str | None = None


class VersionOut(BaseModel):
    id: str
    project_id: str
    number: int
    parent_version_id: str
    source: str
    generation_id: str
    branch: str = "main"
    file_count: int
    gate: dict[str, Any] | None = None
    pattern_id: str = ""
    feedback: dict[str, Any] | None = None
    created_at: datetime


class VersionList(BaseModel):
    items: list[VersionOut]


class FileDiff(BaseModel):
    path: str
    status: Literal["added", "removed", "modified"]
    patch: str


class DiffOut(BaseModel):
    from_version: str
    to_version: str
    files: list[FileDiff]


class FeedbackIn(BaseModel):
    model_config = ConfigDict(extra="forbid")
    rating: int = Field(ge=1, le=5)
    comment: str = Field(default="", max_length=2000)


class MarketplaceRating(BaseModel):
    average: float
    reviews: int


class PatternOut(BaseModel):
    id: str
    title: str
    version: str
    keywords: list[str]
    entities: list[str]
    gate_runs: int
    gate_passed: int
    gate_pass_rate: float | None
    feedback_up: int
    feedback_down: int
    #: The marketplace rating (``average`` stars, ``reviews``) of the template listings
    #: exported from this pattern, or of this template; None before any review.
    marketplace_rating: MarketplaceRating | None = None
    #: ``library`` (the built-in pattern library) or ``template`` (a pattern pack the
    #: org bought in the marketplace; shown to that org only).
    source: Literal["library", "template"] = "library"
    listing_id: str | None = None
    pack: str | None = None


class PatternList(BaseModel):
    items: list[PatternOut]
