from __future__ import annotations

import pytest

from qlp_gateway.routes import Route, body_limit, resolve


@pytest.mark.parametrize(
    ("path", "service"),
    [
        ("/v1/auth/login", "identity"),
        ("/v1/me", "identity"),
        ("/v1/orgs/org_1/members", "identity"),
        ("/v1/api-keys", "identity"),
        ("/v1/api-keys/key_1", "identity"),
        ("/v1/billing/subscription", "billing"),
        ("/v1/generations", "generation"),
        ("/v1/projects/prj_1/versions", "generation"),
        ("/v1/patterns", "generation"),
        ("/v1/marketplace/listings", "marketplace"),
        ("/v1/providers/prv_1/machines", "scheduler"),
        ("/v1/gpu/offers", "marketplace"),
        ("/v1/gpu/offers/", "marketplace"),
        ("/v1/gpu/jobs", "scheduler"),
        ("/v1/gpu/offersx", "scheduler"),
    ],
)
def test_prefixes_route_to_their_service(path: str, service: str) -> None:
    route = resolve(path)
    assert route is not None and route.service == service


@pytest.mark.parametrize(
    "path",
    [
        "/v1",
        "/v1/meta",  # a prefix must end at a segment boundary
        "/v1/billingx",
        "/internal/v1/api-keys/verify",
        "/v2/me",
        "/v1//me",
        "/v1/orgs/../billing",
    ],
)
def test_unknown_and_internal_paths_are_not_routed(path: str) -> None:
    assert resolve(path) is None


@pytest.mark.parametrize(
    "path",
    ["/", "/login", "/signup", "/logout", "/invite", "/app", "/app/gpu/offers", "/static/x/a.js"],
)
def test_console_pages_route_to_the_console_as_public(path: str) -> None:
    # the console signs people in with its own session; /v1 routes keep their rules
    assert resolve(path) == Route("console", True, False)


@pytest.mark.parametrize("path", ["/appx", "/staticfiles", "/login/x", "/internal/v1/x"])
def test_console_paths_end_at_a_segment_boundary(path: str) -> None:
    assert resolve(path) is None


def test_only_the_auth_entry_points_are_public() -> None:
    public = [
        "/v1/auth/signup",
        "/v1/auth/login",
        "/v1/auth/refresh",
        "/v1/auth/logout",
        "/v1/auth/invitations/accept",
    ]
    for p in public:
        assert resolve(p) == Route("identity", True, False)
    assert resolve("/v1/billing/webhooks/stripe") == Route("billing", True, False)
    # plans and prices, and invoices opened by a signed link (billing checks it)
    for p in ("/v1/billing/plans", "/v1/billing/plans/starter", "/v1/billing/shared/invoices/i"):
        assert resolve(p) == Route("billing", True, False)
    for p in (
        "/v1/me",
        "/v1/auth/sessions",
        "/v1/orgs",
        "/v1/api-keys",
        "/v1/billing/plansx",
        "/v1/billing/shared",
        "/v1/billing/subscription",
        "/v1/billing/invoices/inv_1/html",
        "/v1/billing/webhooks",
        "/v1/billing/admin/metrics",
    ):
        r = resolve(p)
        assert r is not None and not r.public


def test_checkpoint_uploads_get_the_large_body_limit() -> None:
    big = resolve("/v1/providers/prv_1/jobs/job_1/checkpoints")
    also = resolve("/v1/providers/prv_1/checkpoints/ckp_1")
    small = resolve("/v1/providers/prv_1/machines")
    assert big and also and small
    assert body_limit(big, 1, 64) == 64
    assert body_limit(also, 1, 64) == 64
    assert body_limit(small, 1, 64) == 1
