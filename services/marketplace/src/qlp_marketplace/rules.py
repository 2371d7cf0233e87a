"""The marketplace's rules, pure: kinds and categories, the revenue split, listing
states, versions, the automatic review, ratings and the refund window."""

from __future__ import annotations

import re
from collections.abc import Mapping
from datetime import UTC, datetime, timedelta
from typing import Any

from qlp_kit.money import Money

KINDS = ("component", "template", "skill", "workflow", "model")
CATEGORIES = ("web", "api", "data", "ml", "devops", "security", "productivity", "other")
LICENSES = ("MIT", "Apache-2.0", "BSD-3-Clause", "GPL-3.0", "MPL-2.0", "proprietary")

#: Platform fee in basis points by kind: 30 % on code and content, 2 % on models (the
#: compute plan's model royalty: the creator keeps 98 %).
PLATFORM_FEE_BPS = {"component": 3000, "template": 3000, "skill": 3000, "workflow": 3000}
MODEL_FEE_BPS = 200
MAX_PRICE = 100_000_00  # 100,000.00 USD

DRAFT = "draft"
IN_REVIEW = "in_review"
PUBLISHED = "published"
DEPRECATED = "deprecated"
DELISTED = "delisted"
STATES = (DRAFT, IN_REVIEW, PUBLISHED, DEPRECATED, DELISTED)
#: Allowed moves. Publishing goes draft → in_review (the automatic review runs at once)
#: → published, or back to draft with the reasons when the review refuses.
TRANSITIONS: dict[str, frozenset[str]] = {
    DRAFT: frozenset({IN_REVIEW, DELISTED}),
    IN_REVIEW: frozenset({PUBLISHED, DRAFT}),
    PUBLISHED: frozenset({DEPRECATED, DELISTED}),
    DEPRECATED: frozenset({PUBLISHED, DELISTED}),
    DELISTED: frozenset(),
}
#: States a creator may set by PATCH (publishing has its own route).
PATCHABLE_STATES = frozenset({DEPRECATED, DELISTED, PUBLISHED})

REFUND_WINDOW = timedelta(days=14)
#: Bayesian prior: C reviews of M stars. One 5-star review reads (3.5·5 + 5)/6 ≈ 3.75,
#: a hundred 4.8s read ≈ 4.75.
PRIOR_COUNT = 5
PRIOR_MEAN = 3.5

MAX_ARTIFACT_BYTES = 25 * 1024 * 1024
ARTIFACT_TYPES = frozenset(
    {
        "application/zip",
        "application/gzip",
        "application/x-tar",
        "application/x-gzip",
        "application/octet-stream",
        "application/json",
        "text/markdown",
        "text/plain",
    }
)
_SEMVER = re.compile(
    r"^(0|[1-9]\d*)\.(0|[1-9]\d*)\.(0|[1-9]\d*)(?:-([0-9A-Za-z.-]+))?(?:\+[0-9A-Za-z.-]+)?$"
)
_TAG = re.compile(r"^[a-z0-9][a-z0-9-]{0,31}$")
MAX_TAGS = 10


class RuleError(ValueError):
    """Input that breaks a marketplace rule (a 422 or 409 to the caller)."""


def platform_fee_bps(kind: str) -> int:
    if kind == "model":
        return MODEL_FEE_BPS
    try:
        return PLATFORM_FEE_BPS[kind]
    except KeyError:
        raise RuleError(f"unknown kind {kind!r}") from None


def split(price: Money, kind: str) -> tuple[Money, Money]:
    """(creator amount, platform fee) of a sale, exactly as billing books it: the
    fee is ``price.split(bps)``'s first part, the creator gets the rest."""
    fee, creator = price.split(platform_fee_bps(kind))
    return creator, fee


def can_move(src: str, dst: str) -> bool:
    return dst in TRANSITIONS.get(src, frozenset())


def parse_semver(version: str) -> tuple[int, int, int, str]:
    m = _SEMVER.match(version or "")
    if not m:
        raise RuleError(f"version {version!r} is not semantic (MAJOR.MINOR.PATCH)")
    return int(m.group(1)), int(m.group(2)), int(m.group(3)), m.group(4) or ""


def semver_key(version: str) -> tuple[int, int, int, int, str]:
    """Sort key: a pre-release sorts before its release."""
    a, b, c, pre = parse_semver(version)
    return a, b, c, 0 if pre else 1, pre


def newer(version: str, than: str | None) -> bool:
    return than is None or semver_key(version) > semver_key(than)


def normalize_tags(tags: list[str]) -> list[str]:
    out: list[str] = []
    for t in tags:
        t = t.strip().lower()
        if not _TAG.match(t):
            raise RuleError(f"tag {t!r}: lowercase letters, digits and '-', at most 32")
        if t not in out:
            out.append(t)
    if len(out) > MAX_TAGS:
        raise RuleError(f"at most {MAX_TAGS} tags")
    return out


def check_artifact(size: int, content_type: str) -> None:
    base = (content_type or "").split(";")[0].strip().lower()
    if base not in ARTIFACT_TYPES:
        raise RuleError(
            f"content type {base or 'none'!r} is not accepted; use one of "
            + ", ".join(sorted(ARTIFACT_TYPES))
        )
    if size <= 0:
        raise RuleError("the artifact is empty")
    if size > MAX_ARTIFACT_BYTES:
        raise RuleError(f"the artifact is larger than {MAX_ARTIFACT_BYTES} bytes")


def auto_review(listing: Mapping[str, Any]) -> list[str]:
    """The automatic review before publication: the reasons it refuses (none: pass).
    It checks that the listing has a current version with an artifact, a summary and
    a description of some substance, a known category and license, and a price
    within bounds; it does not look inside the artifact."""
    reasons = []
    if not listing.get("current_version"):
        reasons.append("add a version (an artifact) before publishing")
    if len(str(listing.get("summary", "")).strip()) < 10:
        reasons.append("the summary needs at least 10 characters")
    if len(str(listing.get("description", "")).strip()) < 20:
        reasons.append("the description needs at least 20 characters")
    if listing.get("category") not in CATEGORIES:
        reasons.append("choose a category")
    if listing.get("license") not in LICENSES:
        reasons.append("choose a license")
    amount = int((listing.get("price") or {}).get("amount", 0))
    if amount < 0 or amount > MAX_PRICE:
        reasons.append("the price is out of bounds")
    return reasons


def bayesian(total_stars: int, count: int) -> float:
    """The shown rating: the mean pulled toward the prior, so few reviews weigh little."""
    if count <= 0:
        return 0.0
    return (PRIOR_COUNT * PRIOR_MEAN + total_stars) / (PRIOR_COUNT + count)


def rating_milli(total_stars: int, count: int) -> int:
    return round(bayesian(total_stars, count) * 1000)


def when(value: Any) -> datetime:
    """A stored time as an aware datetime (the embedded database may hand back ISO
    strings for times written by an update)."""
    if isinstance(value, str):
        value = datetime.fromisoformat(value)
    if not isinstance(value, datetime):
        raise TypeError(f"not a time: {value!r}")
    return value if value.tzinfo else value.replace(tzinfo=UTC)


def refundable(paid_at: Any, now: datetime, window: timedelta = REFUND_WINDOW) -> bool:
    return now - when(paid_at) <= window


def visible_to(listing: Mapping[str, Any], org_id: str) -> bool:
    """May ``org_id`` see the listing? Its creator always; others only published (or
    deprecated) ones, and private ones only the org they are for."""
    if listing.get("org_id") == org_id:
        return True
    if listing.get("status") not in (PUBLISHED, DEPRECATED):
        return False
    private = listing.get("private_to_org_id")
    return not private or private == org_id


def searchable(listing: Mapping[str, Any]) -> bool:
    return listing.get("status") == PUBLISHED
