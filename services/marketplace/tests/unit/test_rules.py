"""The marketplace's rules: the split, states, versions, artifacts, ratings, refunds,
visibility."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest
from hypothesis import given
from hypothesis import strategies as st

from qlp_kit.money import Money
from qlp_marketplace import rules as R


@pytest.mark.parametrize(
    ("kind", "creator", "fee"),
    [
        ("component", 700, 300),
        ("template", 700, 300),
        ("skill", 700, 300),
        ("workflow", 700, 300),
        ("model", 980, 20),
    ],
)
def test_split_by_kind(kind: str, creator: int, fee: int) -> None:
    got = R.split(Money(1_000), kind)
    assert (got[0].amount, got[1].amount) == (creator, fee)


@given(st.integers(min_value=1, max_value=10**9), st.sampled_from(R.KINDS))
def test_split_never_loses_a_cent(amount: int, kind: str) -> None:
    creator, fee = R.split(Money(amount), kind)
    assert creator.amount + fee.amount == amount
    assert creator.amount >= 0 and fee.amount >= 0


def test_unknown_kind_is_refused() -> None:
    with pytest.raises(R.RuleError):
        R.platform_fee_bps("pattern_pack")


def test_states() -> None:
    assert R.can_move("draft", "in_review") and R.can_move("in_review", "published")
    assert R.can_move("in_review", "draft")  # refused by the review
    assert R.can_move("published", "deprecated") and R.can_move("deprecated", "published")
    assert R.can_move("published", "delisted")
    assert not R.can_move("draft", "published")  # always through the review
    assert not R.can_move("delisted", "published")  # final
    assert not R.can_move("published", "draft")


def test_semver() -> None:
    assert R.parse_semver("1.2.3") == (1, 2, 3, "")
    assert R.newer("1.10.0", "1.9.9") and R.newer("1.0.0", "1.0.0-rc.1")
    assert not R.newer("1.0.0-rc.1", "1.0.0") and R.newer("0.1.0", None)
    for bad in ("1.2", "01.2.3", "v1.2.3", "", "1.2.3.4"):
        with pytest.raises(R.RuleError):
            R.parse_semver(bad)


def test_artifact_checks() -> None:
    R.check_artifact(10, "application/zip")
    R.check_artifact(10, "application/gzip; charset=binary")
    with pytest.raises(R.RuleError, match="content type"):
        R.check_artifact(10, "image/png")
    with pytest.raises(R.RuleError, match="empty"):
        R.check_artifact(0, "application/zip")
    with pytest.raises(R.RuleError, match="larger"):
        R.check_artifact(R.MAX_ARTIFACT_BYTES + 1, "application/zip")


def test_tags_normalized_and_bounded() -> None:
    assert R.normalize_tags(["Python", "python", " api "]) == ["python", "api"]
    with pytest.raises(R.RuleError):
        R.normalize_tags(["no spaces"])
    with pytest.raises(R.RuleError):
        R.normalize_tags([f"t{i}" for i in range(11)])


def test_auto_review_reasons() -> None:
    ok = {
        "current_version": "1.0.0",
        "summary": "a good summary",
        "description": "a description long enough",
        "category": "api",
        "license": "MIT",
        "price": {"amount": 100},
    }
    assert R.auto_review(ok) == []
    reasons = R.auto_review({**ok, "current_version": None, "summary": "short"})
    assert len(reasons) == 2 and any("version" in r for r in reasons)


def test_bayesian_few_reviews_weigh_little() -> None:
    one_five = R.bayesian(5, 1)
    hundred = R.bayesian(480, 100)  # a hundred 4.8s
    assert one_five < hundred
    assert round(one_five, 2) == 3.75 and round(hundred, 2) == 4.74
    assert R.bayesian(0, 0) == 0.0
    assert R.rating_milli(480, 100) == 4738


def test_refund_window() -> None:
    paid = datetime(2026, 1, 1, tzinfo=UTC)
    assert R.refundable(paid, paid + timedelta(days=14))
    assert not R.refundable(paid, paid + timedelta(days=14, seconds=1))
    assert R.refundable(paid.isoformat(), paid + timedelta(days=1))  # stored as text


def test_visibility() -> None:
    pub = {"org_id": "org_c", "status": "published", "private_to_org_id": None}
    assert R.visible_to(pub, "org_x")
    assert not R.visible_to({**pub, "status": "draft"}, "org_x")
    assert R.visible_to({**pub, "status": "draft"}, "org_c")
    private = {**pub, "private_to_org_id": "org_e"}
    assert R.visible_to(private, "org_e") and not R.visible_to(private, "org_x")
    assert R.visible_to({**pub, "status": "deprecated"}, "org_x")
    assert not R.searchable({**pub, "status": "deprecated"})
