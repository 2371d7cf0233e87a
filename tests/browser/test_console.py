"""The web console in a real browser (Debian's Chromium, headless) against the whole
platform started by the test harness: the journeys a customer, a GPU consumer and a
provider take, tenant isolation, the security properties of the session and forms,
and axe-core on every page."""

from __future__ import annotations

import asyncio
import hashlib
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
from pymongo import AsyncMongoClient

from qlp_testing.flows import PASSWORD, eventually

pytestmark = [pytest.mark.e2e, pytest.mark.timeout(300)]


async def _text(person: Any, selector: str) -> str:
    return str(await person.page.locator(selector).first.inner_text())


async def _top_up(person: Any, amount: str) -> None:
    await person.goto("/app/billing/credits")
    await person.page.fill("#amount", amount)
    await person.page.click("form[action='/app/billing/credits'] button[type=submit]")
    await person.page.wait_for_selector(".flash.ok")
    assert f"Added ${amount}" in await _text(person, ".flash.ok")


async def test_sign_up_upgrade_and_api_key(person_factory: Any) -> None:
    ann = await person_factory("ann")
    await ann.signup("Ann Corp")
    assert "Welcome" in await ann.page.content()
    await ann.check("overview")

    await _top_up(ann, "150.00")
    await ann.check("credits")

    # plans: compare, preview the proration, confirm
    await ann.goto("/app/billing/plans")
    await ann.check("plans")
    await ann.page.click("text=Switch to Starter")
    confirm = ann.page.locator("#preview button[type=submit]")
    await confirm.wait_for()
    assert await confirm.inner_text() == "Confirm change to starter"
    preview = await _text(ann, "#preview")
    assert "Due now" in preview and "$" in preview
    await ann.check("plan-preview")
    await confirm.click()
    await ann.page.wait_for_selector(".flash.ok")
    assert "starter" in (await _text(ann, ".flash.ok")).lower()
    assert "You are on Starter" in await _text(ann, "main")

    # an API key: the secret once, with a copy button; never again
    await ann.goto("/app/api-keys")
    await ann.check("api-keys")
    await ann.page.fill("#key-name", "ci pipeline")
    await ann.page.check("input[value='gpu:jobs']")
    await ann.page.click("form[action='/app/api-keys'] button[type=submit]")
    secret = (await _text(ann, "#new-key")).strip()
    assert len(secret) > 20
    assert await ann.page.locator("button[data-copy=new-key]").count() == 1
    await ann.check("api-key-created")
    await ann.goto("/app/api-keys")
    assert secret not in await ann.page.content()
    assert "ci pipeline" in await _text(ann, "table")

    # invitations: the code shown to the inviter
    await ann.goto("/app/members")
    await ann.page.fill("#inv-email", "colleague@example.com")
    await ann.page.select_option("#inv-role", "viewer")
    await ann.page.click("form[action='/app/members/invite'] button[type=submit]")
    code = (await _text(ann, "#invite-code")).strip()
    assert len(code) > 10
    await ann.check("members-invited")

    # the colleague accepts on /invite and joins as a viewer: the API's 403 in words
    vic = await person_factory("vic")
    await vic.goto("/invite")
    await vic.page.fill("#token", code)
    await vic.page.fill("#display_name", "Vic")
    await vic.page.fill("#password", PASSWORD)
    await vic.page.click("form[action='/invite'] button[type=submit]")
    await vic.page.wait_for_url("**/app")
    assert "Ann Corp" in await _text(vic, "header") and "viewer" in await _text(vic, "header")
    refused = await vic.goto("/app/api-keys")
    assert refused.status == 403
    assert "Your role does not allow this" in await _text(vic, ".problem")
    await vic.check("viewer-refused")
    await ann.goto("/app/members")
    assert "colleague@example.com" in await _text(ann, "main table")
    await ann.page.locator("form[action$='/role'] select").first.select_option("developer")
    await ann.page.locator("form[action$='/role'] button[type=submit]").first.click()
    assert "Role changed to developer" in await _text(ann, ".flash.ok")

    # revoke the key made above
    await ann.goto("/app/api-keys")
    await ann.page.click("form[action$='/revoke'] button[type=submit]")
    assert "API key revoked" in await _text(ann, ".flash.ok")
    assert "ci pipeline" not in await _text(ann, "main table")  # revoked keys are not listed

    # the billing profile, then on the invoice
    await ann.goto("/app/billing/profile")
    await ann.check("billing-profile")
    await ann.page.fill("#p-name", "Ann Corp GmbH")
    await ann.page.fill("#p-email", "billing@ann.example")
    await ann.page.fill("#p-line1", "Hauptstrasse 1")
    await ann.page.fill("#p-city", "Berlin")
    await ann.page.fill("#p-postal", "10115")
    await ann.page.fill("#p-country", "DE")
    await ann.page.click("form[action='/app/billing/profile'] button[type=submit]")
    assert "Billing profile saved" in await _text(ann, ".flash.ok")

    # every other page renders, says what is empty, and passes axe
    for path, label in [
        ("/app/audit", "audit"),
        ("/app/billing/usage", "usage"),
        ("/app/billing/invoices", "invoices"),
        ("/app/billing/invoices/upcoming", "invoice-upcoming"),
        ("/app/gpu/offers", "offers"),
        ("/app/gpu/launch", "launch"),
        ("/app/gpu/instances", "instances-empty"),
        ("/app/provider", "provider-empty"),
        ("/app/generations", "generations"),
        ("/app/marketplace", "marketplace"),
        ("/app/marketplace/creator", "creator"),
    ]:
        resp = await ann.goto(path)
        assert resp.status == 200, (path, resp.status)
        await ann.check(label)
    # the upcoming invoice as PDF (rendered by the console) and as billing's document
    await ann.goto("/app/billing/invoices/upcoming")
    pdf = await ann.page.request.get(ann.base + "/app/billing/invoices/upcoming/pdf")
    assert pdf.status == 200 and (await pdf.body())[:5] == b"%PDF-"
    assert pdf.headers["content-type"] == "application/pdf"
    await ann.page.click("text=Open the printable document")
    await ann.page.wait_for_url("**/v1/billing/shared/invoices/upcoming?*")
    assert "Starter" in await ann.page.content()
    assert "Ann Corp GmbH" in await ann.page.content()  # bill-to on the printable invoice

    # cancel: Starter stays until the end of the period
    await ann.goto("/app/billing/plans")
    await ann.page.click("details.danger > summary")
    await ann.page.click("form[action='/app/billing/plans/cancel'] button[type=submit]")
    assert "Canceled" in await _text(ann, ".flash.ok")
    assert "cancels at period end" in await _text(ann, "main")

    resp = await ann.goto("/app/admin")
    assert resp.status == 403 and "Platform admins only" in await _text(ann, "main")
    await ann.check("admin-refused")
    resp = await ann.goto("/app/no-such-page")
    assert resp.status == 404
    await ann.check("not-found")
    audit = await ann.goto("/app/audit")
    assert audit.status == 200
    assert "api_key" in (await _text(ann, "table")).lower()


async def test_login_page_and_problems_in_words(person_factory: Any) -> None:
    visitor = await person_factory("visitor")
    resp = await visitor.goto("/app/billing/plans")
    assert visitor.page.url.endswith("/login?next=%2Fapp%2Fbilling%2Fplans")
    assert resp.status == 200
    await visitor.check("login")
    await visitor.page.fill("#email", "nobody@example.com")
    await visitor.page.fill("#password", "wrong password, clearly")
    await visitor.page.click("form button[type=submit]")
    problem = await _text(visitor, ".problem")
    assert (
        "sign" in problem.lower()
        or "password" in problem.lower()
        or "credentials" in problem.lower()
    )
    await visitor.check("login-failed")
    await visitor.goto("/signup")
    await visitor.check("signup")
    await visitor.goto("/invite")
    await visitor.check("invite")


async def test_keyboard_and_phone_layout(person_factory: Any) -> None:
    mia = await person_factory(
        "mia", viewport={"width": 390, "height": 844}, is_mobile=True, has_touch=True
    )
    await mia.signup("Mia Mobile")
    await mia.goto("/app/billing/usage")
    # the skip link is the first stop of the keyboard and moves focus to the content
    await mia.page.keyboard.press("Tab")
    assert "skip-link" in await mia.page.evaluate("() => document.activeElement.className")
    await mia.page.keyboard.press("Enter")
    assert await mia.page.evaluate("() => document.activeElement.id") == "main"
    # on a phone the menu is folded, and opens from the keyboard
    menu = mia.page.locator("details.navtoggle")
    assert await menu.get_attribute("open") is None
    await mia.page.focus("details.navtoggle > summary")
    await mia.page.keyboard.press("Enter")
    assert await menu.get_attribute("open") is not None
    await mia.check("phone-menu")
    for path in ("/app", "/app/billing/plans", "/app/gpu/launch", "/app/provider"):
        await mia.goto(path)
        fits = "() => document.documentElement.scrollWidth <= window.innerWidth + 1"
        assert await mia.page.evaluate(fits), f"{path} scrolls sideways on a phone"
        await mia.check("phone-" + path.strip("/").replace("/", "-"))


async def test_session_cookie_csrf_cross_site_and_logout(
    person_factory: Any, console: str, qlp_platform: Any
) -> None:
    bob = await person_factory("bob")
    await bob.signup("Bob Ltd")
    resp = await bob.goto("/app/billing/credits")
    headers = resp.headers
    csp = headers["content-security-policy"]
    assert "script-src 'self'" in csp and "unsafe-inline" not in csp
    assert "frame-ancestors 'none'" in csp
    assert headers["cache-control"] == "no-store"
    html = await bob.page.content()
    assert "eyJ" not in html  # no JWT anywhere in the page

    cookies = {c["name"]: c for c in await bob.ctx.cookies()}
    session = cookies["qlp_session"]
    assert session["httpOnly"] is True
    assert session["sameSite"] == "Lax"
    assert session["secure"] is False  # plain http here; Secure under https (unit tested)
    assert session["path"] == "/"
    assert "eyJ" not in session["value"]  # an opaque id, not the token

    token = await bob.csrf()
    url = console + "/app/billing/credits"
    # no CSRF token: refused
    r = await bob.page.request.post(url, form={"amount": "5.00"}, max_redirects=0)
    assert r.status == 403
    # a wrong one: refused
    r = await bob.page.request.post(url, form={"amount": "5.00", "csrf_token": "x" * 43})
    assert r.status == 403
    # the right token, sent from another site: refused
    r = await bob.page.request.post(
        url,
        form={"amount": "5.00", "csrf_token": token},
        headers={"Origin": "http://evil.example", "Sec-Fetch-Site": "cross-site"},
    )
    assert r.status == 403

    # a real cross-site form post from another origin, in the same browser: the
    # SameSite cookie is not sent and the console does nothing
    evil = await bob.ctx.new_page()

    async def serve_evil(route: Any) -> None:
        await route.fulfill(
            content_type="text/html",
            body=(
                f"<form method=post action='{url}'><input name=amount value='5.00'>"
                f"<input name=csrf_token value='{token}'></form>"
                "<script>document.forms[0].submit()</script>"
            ),
        )

    await evil.route("http://evil.test/**", serve_evil)
    async with evil.expect_navigation(url=lambda u: u.startswith(console)):
        await evil.goto("http://evil.test/attack")
    assert "/app/billing/credits" not in evil.url or "Added" not in await evil.content()
    await evil.close()
    await bob.goto("/app/billing/credits")
    assert "$0.00" in await _text(bob, ".cards article .big")  # nothing was added

    # the access token runs out: the page and its requests at once refresh it once, and
    # the session goes on (a refresh token is used up by its first use)
    mongo: Any = AsyncMongoClient(qlp_platform.mongodb_url)
    try:
        sessions = mongo["qlp_console"]["sessions"]
        key = hashlib.sha256(session["value"].encode()).hexdigest()
        before = await sessions.find_one({"_id": key})
        assert before is not None and "access_token" in before
        await sessions.update_one({"_id": key}, {"$set": {"access_expires_at": 0}})
        answers = await asyncio.gather(
            *(bob.page.request.get(console + p, max_redirects=0)
              for p in ("/app", "/app/billing/credits", "/app/gpu/instances", "/app/audit"))
        )  # fmt: skip
        assert [a.status for a in answers] == [200, 200, 200, 200]
        after = await sessions.find_one({"_id": key})
        assert after is not None and after["refresh_token"] != before["refresh_token"]
        assert after["access_expires_at"] > 0
        # and the new refresh token still works (reusing the old one would have made
        # identity revoke the whole token family)
        await sessions.update_one({"_id": key}, {"$set": {"access_expires_at": 0}})
        again = await bob.page.request.get(console + "/app", max_redirects=0)
        assert again.status == 200
    finally:
        await mongo.close()

    # logout ends the session on the server: the old cookie no longer works
    await bob.page.click("form[action='/logout'] button[type=submit]")
    await bob.page.wait_for_url("**/login")
    assert "qlp_session" not in {c["name"] for c in await bob.ctx.cookies()}
    replay = await person_factory("bob-replay")
    await replay.ctx.add_cookies([{k: session[k] for k in ("name", "value", "domain", "path")}])
    await replay.goto("/app")
    assert "/login" in replay.page.url


def _agent(gateway: str, key: str, state: Path, log: Path) -> subprocess.Popen[bytes]:
    fh = open(log, "ab")
    return subprocess.Popen(
        [
            sys.executable, "-m", "qlp_agent", "run",
            "--gateway", gateway,
            "--api-key", key,
            "--price-per-gpu-hour", "60.00",
            "--region", "eu-west",
            "--simulate-gpus", "2",
            "--state-dir", str(state),
            "--heartbeat-interval", "1",
            "--poll-wait", "2",
        ],
        stdout=fh, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL,
        env={**os.environ, "PYTHONUNBUFFERED": "1"},
    )  # fmt: skip


async def test_gpu_job_live_on_a_simulated_agent_and_provider_earnings(
    person_factory: Any, console: str, tmp_path: Path
) -> None:
    pat = await person_factory("pat")
    await pat.signup("Pat GPU Provider")
    await pat.goto("/app/provider")
    await pat.check("provider-new")
    await pat.page.click("form[action='/app/provider/agent-key'] button[type=submit]")
    key = (await _text(pat, "#agent-key")).strip()
    assert "qlp-agent run" in await _text(pat, "#agent-cmd")
    await pat.check("provider-agent-key")
    agent = _agent(console, key, tmp_path / "agent", tmp_path / "agent.log")
    try:

        async def machines() -> str:
            await pat.goto("/app/provider")
            return await _text(pat, "main table")

        await eventually(machines, lambda t: "online" in t or "active" in t, 60, "agent online")
        await pat.check("provider-online")
        # the machines table refreshes itself (htmx every 5 s) from this partial
        part = await pat.page.request.get(console + "/app/provider/machines")
        assert part.status == 200 and "<html" not in await part.text()
        assert "simulated" in await part.text()

        cara = await person_factory("cara")
        await cara.signup("Cara Consumer")
        await _top_up(cara, "50.00")

        async def offers() -> str:
            # the catalogue is the marketplace's read model of the scheduler's events
            await cara.goto("/app/gpu/offers?region=eu-west")
            return await _text(cara, ".table-scroll table")

        await eventually(offers, lambda t: "$60.00" in t, 30, "the agent's offer listed")
        await cara.check("offers")

        await cara.goto("/app/gpu/launch")
        await cara.page.fill("#max_price", "70.00")
        await cara.page.fill("#max_minutes", "10")
        await cara.page.fill(
            "#command",
            f"{sys.executable} -m qlp_agent.workloads.train --steps 40 --step-sleep 0.25"
            " --checkpoint-every 10",
        )

        async def estimate() -> str:
            await cara.page.click("button[value=quote]")
            await cara.page.wait_for_selector("#quote-h")
            return await _text(cara, ".quote")

        quote = await eventually(estimate, lambda t: "enough" in t, 60, "top-up seen")
        assert "$11.67" in quote  # 10 minutes at $70.00 per GPU-hour
        await cara.check("launch-quote")
        await cara.page.click("button[value=submit]")
        await cara.page.wait_for_url("**/app/gpu/instances/*")
        job_url = cara.page.url
        assert "held in escrow" in await _text(cara, ".flash.ok")

        # live telemetry arrives over SSE, then the job completes on the page itself
        await cara.page.wait_for_function(
            "() => Number(document.getElementById('live').dataset.samples || 0) >= 2",
            timeout=60_000,
        )
        await cara.check("instance-live")
        await cara.page.wait_for_function(
            "() => document.getElementById('job-status').textContent === 'completed'",
            timeout=90_000,
        )
        await cara.page.wait_for_function(
            "() => document.getElementById('logs').textContent.includes('final_loss=')",
            timeout=30_000,
        )
        await cara.goto(job_url.removeprefix(console))
        assert "completed" in await _text(cara, "#job-status")
        assert "$" in await _text(cara, "#job-cost")
        await cara.check("instance-completed")
        # a second, long job: cancel it from its page
        await cara.goto("/app/gpu/launch")
        await cara.page.fill("#max_price", "70.00")
        await cara.page.fill("#max_minutes", "10")
        await cara.page.fill(
            "#command",
            f"{sys.executable} -m qlp_agent.workloads.train --steps 1000 --step-sleep 0.5",
        )
        await cara.page.click("button[value=submit]")
        await cara.page.wait_for_url("**/app/gpu/instances/*")
        await cara.page.wait_for_function(
            "() => document.getElementById('job-status').textContent === 'running'", timeout=60_000
        )
        await cara.page.click("form[action$='/cancel'] button[type=submit]")
        assert "Cancel requested" in await _text(cara, ".flash.ok")
        await cara.page.wait_for_function(
            "() => document.getElementById('job-status').textContent === 'canceled'", timeout=60_000
        )
        await cara.goto("/app/gpu/instances")
        assert "completed" in await _text(cara, "main table")
        assert "canceled" in await _text(cara, "main table")
        await cara.check("instances")

        # another org cannot reach this job's pages
        eve = await person_factory("eve")
        await eve.signup("Eve Elsewhere")
        path = job_url.removeprefix(console)
        resp = await eve.goto(path)
        assert resp.status == 404
        assert "Not found" in await _text(eve, "main h1")
        await eve.check("other-org-404")
        live = await eve.page.request.get(console + path + "/live")
        assert live.status == 404

        # the provider sees what it earned once billing settled the job
        async def earned() -> str:
            await pat.goto("/app/provider")
            return await _text(pat, "#earned-net")

        net = await eventually(earned, lambda t: t not in ("$0.00", ""), 60, "earnings")
        assert net.startswith("$")
        await pat.check("provider-earnings")
        await pat.page.click("form[action='/app/provider/payouts'] button[type=submit]")
        assert "Payout of $" in await _text(pat, ".flash.ok")
    finally:
        agent.terminate()
        try:
            agent.wait(20)
        except subprocess.TimeoutExpired:
            agent.kill()


def _artifact() -> bytes:
    """A template's artifact is a pattern pack (the marketplace checks it)."""
    from qlp_testing.templates import tiny_pack

    return tiny_pack("console-outbox")


ARTIFACT = _artifact()


async def test_marketplace_search_buy_download_review_and_creator_earnings(
    person_factory: Any, console: str
) -> None:
    import httpx

    from qlp_testing.flows import bearer, signup

    async with httpx.AsyncClient(base_url=console, timeout=30) as api:
        seller_signup = await signup(api, "console-seller")
        seller = bearer(seller_signup)
        body = {
            "kind": "template",
            "title": "Console outbox template",
            "summary": "A service template with a transactional outbox.",
            "description": "Events ride in the changed document.",
            "category": "api",
            "tags": ["python", "outbox"],
            "license": "MIT",
            "price": {"amount": 1500, "currency": "USD"},
        }
        made = await api.post("/v1/marketplace/listings", json=body, headers=seller)
        if made.status_code in (502, 503, 404):
            pytest.skip("the marketplace service is not part of this platform run")
        assert made.status_code == 201, made.text
        lid = made.json()["id"]
        r = await api.post(
            f"/v1/marketplace/listings/{lid}/versions",
            params={"version": "1.0.0", "changelog": "first"},
            content=ARTIFACT,
            headers={**seller, "content-type": "application/zip"},
        )
        assert r.status_code == 201, r.text
        r = await api.post(f"/v1/marketplace/listings/{lid}/publish", headers=seller)
        assert r.status_code == 200, r.text

    dan = await person_factory("dan")
    await dan.signup("Dan Buyer")
    await _top_up(dan, "50.00")

    async def search() -> str:
        await dan.goto("/app/marketplace?q=outbox")
        return await _text(dan, "main")

    await eventually(search, lambda t: "Console outbox template" in t, 60, "the listing indexed")
    await dan.check("marketplace-search")
    await dan.page.click("text=Console outbox template")
    await dan.page.wait_for_url(f"**/app/marketplace/listings/{lid}")
    await dan.check("marketplace-listing")
    await dan.page.click("form[action$='/buy'] button[type=submit]")
    assert "Purchase" in await _text(dan, ".flash.ok")

    async def bought() -> int:
        await dan.goto(f"/app/marketplace/listings/{lid}")
        return int(await dan.page.locator("a[href$='/download']").count())

    await eventually(bought, lambda n: n == 1, 60, "the purchase paid")
    got = await dan.page.request.get(f"{console}/app/marketplace/listings/{lid}/download")
    assert got.status == 200 and await got.body() == ARTIFACT
    await dan.page.fill("#rtitle", "Works well")
    await dan.page.fill("#rbody", "Saved me a day.")
    await dan.page.click("form[action$='/reviews'] button[type=submit]")
    assert "Works well" in await _text(dan, "#rv-h + article")
    await dan.check("marketplace-reviewed")

    # the creator signs in on the console and sees the sale
    sam = await person_factory("sam")
    await sam.goto("/login")
    await sam.page.fill("#email", seller_signup["user"]["email"])
    await sam.page.fill("#password", PASSWORD)
    await sam.page.click("form button[type=submit]")
    await sam.page.wait_for_url("**/app")

    async def earnings() -> str:
        await sam.goto("/app/marketplace/creator")
        return await _text(sam, "main")

    text = await eventually(earnings, lambda t: "$10.50" in t, 60, "creator earnings")
    assert "Console outbox template" in text
    await sam.check("creator-earnings")


async def test_generation_live_progress_gate_versions_diff_and_download(
    person_factory: Any, console: str
) -> None:
    gia = await person_factory("gia")
    await gia.signup("Gia Builder")
    await gia.goto("/app/generations")
    await gia.page.fill("#prompt", "a reading list app for a book club")
    await gia.page.select_option("#tier", "T0")
    await gia.page.click("form[action='/app/generations'] button[type=submit]")
    await gia.page.wait_for_url("**/app/generations/*")
    if await gia.page.locator("#gen-live").count():
        await gia.check("generation-running")
    # live progress over SSE; the page reloads itself once the generation has ended
    await gia.page.wait_for_selector("#gate-h", timeout=120_000)
    assert "completed" in await _text(gia, "#gen-status")
    assert "passed" in await _text(gia, "section[aria-labelledby=gate-h]")
    await gia.check("generation-done")
    await gia.page.click("text=Open the project and its versions")
    await gia.page.wait_for_url("**/app/projects/*")
    project = gia.page.url.removeprefix(console)
    zip_link = gia.page.locator("a[href$='/archive']").first
    archive = await gia.page.request.get(console + str(await zip_link.get_attribute("href")))
    assert archive.status == 200 and (await archive.body())[:2] == b"PK"
    # restoring v1 makes v2: compare them side by side
    await gia.page.click("form[action$='/restore'] button[type=submit]")
    assert "Restore done" in await _text(gia, ".flash.ok")
    assert await gia.page.locator("ol.timeline > li").count() == 2
    await gia.page.select_option("#from", index=0)
    await gia.page.select_option("#to", index=1)
    await gia.page.click("form[action='" + project + "'] button[type=submit]")
    assert "Changes" in await _text(gia, "main")
    await gia.check("project-compare")
