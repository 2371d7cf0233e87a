"""Browser fixtures: Debian's Chromium (no browser download) driven by Playwright, one
browser for the session, a fresh context per person; screenshots of every page under
``tests/browser/artifacts/`` (ignored); axe-core on every page."""

from __future__ import annotations

import os
import re
import shutil
import uuid
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest

ARTIFACTS = Path(__file__).parent / "artifacts"
PASSWORD = "correct horse battery staple 42"
#: axe-core impacts that fail a page.
FAILING_IMPACTS = frozenset({"serious", "critical"})


def chromium_path() -> str | None:
    given = os.environ.get("QLP_CHROMIUM")
    if given:
        return given
    for name in ("chromium", "chromium-browser"):
        found = shutil.which(name)
        if found:
            return found
    return "/usr/bin/chromium" if Path("/usr/bin/chromium").exists() else None


@pytest.fixture(scope="session")
async def browser() -> AsyncIterator[Any]:
    exe = chromium_path()
    if exe is None:
        pytest.fail("no Chromium found: `make browsers` installs Debian's chromium package")
    from playwright.async_api import async_playwright

    async with async_playwright() as pw:
        b = await pw.chromium.launch(executable_path=exe, args=["--no-sandbox"])
        try:
            yield b
        finally:
            await b.close()


@pytest.fixture(scope="session")
def console(qlp_platform: Any) -> str:
    if "console" not in qlp_platform.state.services:
        pytest.skip("the console is not part of this platform run (QLP_E2E_SERVICES)")
    return str(qlp_platform.state.gateway_url)


class Person:
    """One browser context (one person's cookies) with helpers for the console."""

    def __init__(self, ctx: Any, page: Any, base: str, name: str) -> None:
        self.ctx = ctx
        self.page = page
        self.base = base
        self.name = name
        self.email = f"{name}-{uuid.uuid4().hex[:8]}@example.com"
        self.console_errors: list[str] = []
        page.on(
            "console",
            lambda m: self.console_errors.append(m.text) if m.type == "error" else None,
        )

    async def goto(self, path: str) -> Any:
        return await self.page.goto(self.base + path)

    async def shot(self, label: str) -> None:
        ARTIFACTS.mkdir(exist_ok=True)
        safe = re.sub(r"[^a-z0-9]+", "-", f"{self.name}-{label}".lower()).strip("-")
        await self.page.screenshot(path=str(ARTIFACTS / f"{safe}.png"), full_page=True)

    async def check(self, label: str) -> None:
        """Screenshot the page and run axe-core on it: no serious or critical violation,
        and the Content-Security-Policy refused nothing."""
        await self.shot(label)
        await assert_accessible(self.page, label)
        csp = [e for e in self.console_errors if "Content Security Policy" in e]
        assert not csp, f"{label}: CSP violations {csp}"

    async def signup(self, org: str) -> None:
        await self.goto("/signup")
        await self.page.fill("#org_name", org)
        await self.page.fill("#display_name", self.name.capitalize())
        await self.page.fill("#email", self.email)
        await self.page.fill("#password", PASSWORD)
        await self.page.click("form[action='/signup'] button[type=submit]")
        await self.page.wait_for_url("**/app?welcome=1")

    async def csrf(self) -> str:
        token: str = await self.page.get_attribute("input[name=csrf_token]", "value")
        return token


async def assert_accessible(page: Any, label: str) -> None:
    from axe_playwright_python.async_playwright import Axe

    results = await Axe().run(page)
    bad = [
        f"{v['id']} ({v['impact']}): {v['help']} — {[n['target'] for n in v['nodes']][:3]}"
        for v in results.response["violations"]
        if v.get("impact") in FAILING_IMPACTS
    ]
    assert not bad, f"{label}: accessibility violations:\n" + "\n".join(bad)


@pytest.fixture
async def person_factory(browser: Any, console: str) -> AsyncIterator[Any]:
    made: list[Any] = []

    async def make(name: str, **ctx_args: Any) -> Person:
        ctx = await browser.new_context(**ctx_args)
        made.append(ctx)
        page = await ctx.new_page()
        return Person(ctx, page, console, name)

    try:
        yield make
    finally:
        for ctx in made:
            await ctx.close()
