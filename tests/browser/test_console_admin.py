"""The admin views in a real browser: an operator makes a user a platform admin with
``qlpctl admins grant`` (the way an SRE does it, no HTTP endpoint a client can reach),
the user signs in again and sees MRR, churn, plans, generations per tier, usage per
meter, the ledger check and revenue split, with axe-core on the page; a user who is no
platform admin is refused the page and sees no link to it; after ``qlpctl admins
revoke`` the next sign-in is refused again."""

from __future__ import annotations

import asyncio
import json
import os
import subprocess
import sys
from typing import Any

import pytest

from qlp_kit.consumer_admin import CONSUMER_SERVICES
from qlp_testing.flows import PASSWORD

pytestmark = [pytest.mark.e2e, pytest.mark.timeout(300)]

SECRET = "e2e-internal-secret"  # what the qlp_platform fixture gives every service


async def qlpctl(platform: Any, *args: str) -> tuple[int, Any, str]:
    env = {**os.environ, "QLP_INTERNAL_AUTH_SECRET": SECRET}
    cmd = [sys.executable, "-m", "qlp_infra.ctl.cli", "--state-dir", str(platform.dir)]
    done = await asyncio.to_thread(
        subprocess.run,
        [*cmd, "--output", "json", *args],
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    try:
        body = json.loads(done.stdout) if done.stdout.strip() else None
    except ValueError:
        body = done.stdout
    return done.returncode, body, done.stderr


async def _sign_in_again(person: Any) -> None:
    await person.page.click("form[action='/logout'] button[type=submit]")
    await person.page.wait_for_url("**/login")
    await person.page.fill("#email", person.email)
    await person.page.fill("#password", PASSWORD)
    await person.page.click("form button[type=submit]")
    await person.page.wait_for_url("**/app")


async def test_platform_admin_sees_the_admin_views_others_are_refused(
    person_factory: Any, qlp_platform: Any
) -> None:
    olga = await person_factory("olga")  # the operator-to-be
    await olga.signup("Ops Org")
    norm = await person_factory("norm")  # an ordinary customer
    await norm.signup("Customer Org")

    # an ordinary user: no link to the admin views, and the page refuses
    assert await norm.page.locator("nav a[href='/app/admin']").count() == 0
    resp = await norm.goto("/app/admin")
    assert resp.status == 403
    text = await norm.page.locator("main").inner_text()
    assert "Platform admins only" in text and "qlpctl admins grant" in text
    assert "MRR" not in text
    await norm.check("admin-refused-customer")

    code, granted, err = await qlpctl(qlp_platform, "admins", "grant", olga.email)
    assert code == 0, err
    assert granted["platform_admin"] is True and granted["changed"] is True
    code, listed, err = await qlpctl(qlp_platform, "admins", "list")
    assert code == 0 and olga.email in [u["email"] for u in listed], err

    # the role comes with the next sign-in
    await _sign_in_again(olga)
    await olga.page.click("nav a[href='/app/admin']")
    await olga.page.wait_for_url("**/app/admin")
    main = olga.page.locator("main")
    assert (await olga.page.locator("#mrr").inner_text()).startswith("$")
    for section in ("#per-plan", "#per-tier", "#per-meter", "#split", "#failovers", "#consumers"):
        assert await olga.page.locator(section).count() == 1, section
    # real numbers: both sign-ups opened free subscriptions; the ledger is balanced
    free_row = olga.page.locator("#per-plan tbody tr", has_text="free")
    assert int((await free_row.locator("td").first.inner_text()).replace(",", "")) >= 2
    assert "balanced" in await olga.page.locator("#ledger-state").inner_text()
    assert "NOT balanced" not in await main.inner_text()
    # every service with consumers reported its groups, read from the broker
    assert await olga.page.locator("[id^='ops-problem-']").count() == 0
    cells = olga.page.locator("#consumers tbody tr td:first-child")
    assert set(await cells.all_inner_texts()) == set(CONSUMER_SERVICES)
    assert "consumer groups" in await olga.page.locator("#ops-summary").inner_text()
    await olga.check("admin-views")

    # the customer is still refused; the operator revokes and the next sign-in is too
    assert (await norm.goto("/app/admin")).status == 403
    code, revoked, err = await qlpctl(qlp_platform, "admins", "revoke", olga.email)
    assert code == 0 and revoked["changed"] is True, err
    await _sign_in_again(olga)
    assert await olga.page.locator("nav a[href='/app/admin']").count() == 0
    assert (await olga.goto("/app/admin")).status == 403


async def test_qlpctl_admins_grant_of_an_unknown_email_fails(qlp_platform: Any) -> None:
    code, _, err = await qlpctl(qlp_platform, "admins", "grant", "nobody-here@example.com")
    assert code == 1 and "404" in err
