"""The blueprint editor and the listing editor in a real browser against the whole
platform: a generation's blueprint edited (JSON and API validation errors shown on
their fields) and regenerated as a "what if" branch of its version; a creator creates
a listing, is told what the review wants, adds a version from one of their generation
versions, edits and publishes it, on a phone-sized screen and with the keyboard.
axe-core and a screenshot on every page."""

from __future__ import annotations

import json
from typing import Any

import pytest

pytestmark = [pytest.mark.e2e, pytest.mark.timeout(420)]


async def _text(person: Any, selector: str) -> str:
    return str(await person.page.locator(selector).first.inner_text())


async def _generate_t0(person: Any, prompt: str) -> str:
    await person.goto("/app/generations")
    await person.page.fill("#prompt", prompt)
    await person.page.select_option("#tier", "T0")
    await person.page.click("form[action='/app/generations'] button[type=submit]")
    await person.page.wait_for_url("**/app/generations/gen_*")
    await person.page.wait_for_selector("#gate-h", timeout=180_000)
    assert "completed" in await _text(person, "#gen-status")
    return str(person.page.url)


async def test_blueprint_edit_and_what_if_regeneration(person_factory: Any, console: str) -> None:
    wes = await person_factory("wes")
    await wes.signup("Wes What If")
    first = await _generate_t0(wes, "a reading list app for a book club")
    await wes.page.click("#edit-blueprint")
    await wes.page.wait_for_url("**/blueprint")
    await wes.check("blueprint-editor")
    original = json.loads(await wes.page.input_value("#blueprint"))
    assert original["entities"] and original["roles"][0] == "admin"
    parent = await wes.page.input_value("#parent_version_id")
    assert parent.startswith("ver_")  # branches from the version it built

    # not JSON: the console says where, the text is kept
    await wes.page.fill("#blueprint", '{"name": "x",\n  "title": }')
    await wes.page.click("#blueprint-form button[type=submit]")
    assert "line 2, column 12" in await _text(wes, "#field-errors")
    assert await wes.page.input_value("#blueprint") == '{"name": "x",\n  "title": }'
    await wes.check("blueprint-json-error")

    # JSON the API refuses: its problem+json errors on the fields
    bad = json.loads(json.dumps(original))
    bad["entities"][0]["name"] = "not camel"
    await wes.page.fill("#blueprint", json.dumps(bad, indent=2))
    await wes.page.click("#blueprint-form button[type=submit]")
    errors = await _text(wes, "#field-errors")
    assert "entities[0].name" in errors and "CamelCase" in errors
    assert await wes.page.get_attribute("#blueprint", "aria-invalid") == "true"
    await wes.check("blueprint-api-error")

    # a valid what-if: one more field, submitted with the keyboard
    good = json.loads(json.dumps(original))
    good["entities"][0]["fields"].append(
        {"name": "what_if_note", "type": "text", "required": False}
    )
    await wes.page.fill("#blueprint", json.dumps(good, indent=2))
    await wes.page.select_option("#tier", "T0")
    await wes.page.focus("#blueprint-form button[type=submit]")
    await wes.page.keyboard.press("Enter")
    await wes.page.wait_for_url("**/app/generations/gen_*")
    assert wes.page.url != first
    assert "What-if generation started" in await _text(wes, ".flash.ok")
    await wes.page.wait_for_selector("#gate-h", timeout=180_000)
    assert "completed" in await _text(wes, "#gen-status")
    await wes.page.click("#edit-blueprint")
    again = json.loads(await wes.page.input_value("#blueprint"))
    assert "what_if_note" in [f["name"] for f in again["entities"][0]["fields"]]
    # the project has both versions: the what-if is v2 of the same project
    await wes.page.click("text=← Generation")
    await wes.page.click("text=Open the project and its versions")
    await wes.page.wait_for_url("**/app/projects/*")
    assert await wes.page.locator("ol.timeline > li").count() == 2
    assert "v2" in await _text(wes, "ol.timeline")
    await wes.check("blueprint-what-if-project")


async def test_creator_lists_a_generation_version_and_publishes_it(
    person_factory: Any, console: str
) -> None:
    cara = await person_factory("cara", viewport={"width": 390, "height": 844})
    await cara.signup("Cara Creates")
    await _generate_t0(cara, "an inventory tracker for a small bakery")

    await cara.goto("/app/marketplace/creator")
    await cara.page.click("#new-listing")
    await cara.page.wait_for_url("**/creator/listings/new")
    await cara.check("listing-new")
    await cara.page.fill("#title", "Bakery inventory starter")
    await cara.page.select_option("#kind", "component")
    await cara.page.select_option("#category", "web")
    await cara.page.select_option("#license", "MIT")
    await cara.page.fill("#price", "twelve")  # refused by the console, in words
    await cara.page.click("#listing-form button[type=submit]")
    assert "price" in await _text(cara, "#field-errors")
    await cara.page.fill("#price", "4.00")
    await cara.page.fill("#tags", "Bakery, inventory")
    await cara.page.click("#listing-form button[type=submit]")
    await cara.page.wait_for_url("**/creator/listings/lst_*")
    editor_path = cara.page.url.removeprefix(console)
    assert "draft" in await _text(cara, "#listing-state")
    await cara.check("listing-draft")

    # publishing too early: the review's reasons, the listing stays a draft
    await cara.page.click("#publish-form button[type=submit]")
    reasons = await _text(cara, "#review-reasons")
    assert "add a version" in reasons and "summary" in reasons
    assert "draft" in await _text(cara, "#listing-state")
    await cara.check("listing-review-refused")

    # a version from her generation version, then the details the review wants
    await cara.page.fill("#version", "1.0.0")
    await cara.page.fill("#changelog", "first release")
    await cara.page.click("#version-form button[type=submit]")
    assert "Version 1.0.0 added" in await _text(cara, ".flash.ok")
    row = await _text(cara, "#listing-versions tbody")
    assert "1.0.0" in row and "ver_" in row
    await cara.page.fill("#summary", "Stock levels for a small bakery")
    await cara.page.fill("#description", "A generated FastAPI app that tracks flour and sugar.")
    await cara.page.click("#listing-form button[type=submit]")
    assert "Listing saved" in await _text(cara, ".flash.ok")
    assert await cara.page.input_value("#price") in ("4.0", "4.00")
    # the publish button by keyboard
    await cara.page.focus("#publish-form button[type=submit]")
    await cara.page.keyboard.press("Enter")
    await cara.page.wait_for_selector("#listing-state .badge.published")
    assert "Published" in await _text(cara, "#listing-state")
    assert "1.0.0" in await _text(cara, "#listing-state")
    # a phone-sized screen: nothing scrolls sideways
    width = await cara.page.evaluate("document.documentElement.scrollWidth")
    assert width <= 390, width
    await cara.check("listing-published")
    await cara.goto("/app/marketplace/creator")
    assert "published" in await _text(cara, "main")

    # another org cannot open her editor
    other = await person_factory("otto")
    await other.signup("Otto Other")
    resp = await other.goto(editor_path)
    assert resp.status == 404
    await other.check("listing-editor-other-org")
