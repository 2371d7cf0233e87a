"""Every domain error maps to its problem document; extra members never replace the
problem's own (a refused state move once passed ``status=`` and answered 500)."""

from __future__ import annotations

import pytest

from qlp_kit.problems import Problem
from qlp_marketplace import service as S
from qlp_marketplace.api import call


async def _raise(exc: Exception) -> None:
    raise exc


@pytest.mark.parametrize(
    ("exc", "status", "members"),
    [
        (S.Conflict("a draft listing cannot become deprecated", listing_status="draft"), 409,
         {"listing_status": "draft", "type": "https://qlp.dev/problems/conflict"}),
        (S.Conflict("a failed purchase cannot be refunded", purchase_status="failed"), 409,
         {"purchase_status": "failed"}),
        (S.Invalid("the automatic review refused the listing", ["choose a license"]), 422,
         {"reasons": ["choose a license"]}),
        (S.NotFound("listing lst_1"), 404, {"detail": "listing lst_1 not found"}),
        (S.PaymentRequired("the balance does not cover it", "pur_1"), 402,
         {"purchase_id": "pur_1"}),
        (S.Forbidden("not yours"), 403, {"title": "Forbidden"}),
        (S.TooLarge("too big"), 413, {}),
        (S.Unsupported("content type 'x' is not accepted"), 415, {}),
    ],
)  # fmt: skip
async def test_domain_errors_are_problems(
    exc: Exception, status: int, members: dict[str, object]
) -> None:
    with pytest.raises(Problem) as got:
        await call(_raise(exc))
    body = got.value.body("/v1/marketplace/x")
    assert body["status"] == status
    for key, value in members.items():
        assert body[key] == value, key


def test_an_extension_cannot_replace_a_problem_member() -> None:
    with pytest.raises(TypeError, match="instance"):
        Problem(409, "Conflict", "x", instance="/elsewhere")
