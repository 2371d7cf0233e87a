"""The blueprint and listing editors' logic: JSON errors with their place, the API's
validation problems on the fields a person edits, the listing form as the API body,
and both editor pages rendered from API-shaped data (CSRF field in every form)."""

from __future__ import annotations

from typing import Any

import pytest

from qlp_console import editors
from qlp_console.web import templates

BLUEPRINT = {
    "name": "book-club",
    "title": "Book club",
    "entities": [{"name": "Book", "fields": [{"name": "title", "type": "str"}]}],
    "roles": ["admin", "member"],
}


def test_blueprint_round_trips_through_the_editor_text() -> None:
    text = editors.blueprint_text(BLUEPRINT)
    assert text.startswith('{\n  "name": "book-club"')
    assert editors.parse_blueprint(text) == BLUEPRINT


@pytest.mark.parametrize(
    ("text", "words"),
    [
        ("", "empty"),
        ("   ", "empty"),
        ('{"name": "x",\n  "title": }', "line 2, column 12"),
        ("[1, 2]", "JSON object"),
        ("x" * (editors.MAX_BLUEPRINT_CHARS + 1), "at most"),
    ],
)
def test_bad_blueprint_text_says_where(text: str, words: str) -> None:
    with pytest.raises(editors.EditorError) as exc:
        editors.parse_blueprint(text)
    assert words in exc.value.errors["blueprint"]


def test_api_validation_errors_name_the_edited_field() -> None:
    problem = {
        "status": 422,
        "errors": [
            {"loc": ["body", "blueprint", "entities", 0, "fields", 1, "name"],
             "msg": "Value error, field name 'id' must be snake_case, not a reserved word"},
            {"loc": ["body", "blueprint"], "msg": "Value error, entity names repeat"},
            {"loc": ["query", "version"], "msg": "too short"},
            {"loc": ["body", "blueprint", "entities", "2", "name"], "msg": "must be CamelCase"},
            "not a mapping",
        ],
    }  # fmt: skip
    got = editors.field_errors(problem, ("blueprint", "query"))
    assert got == [
        {
            "field": "entities[0].fields[1].name",
            "message": "field name 'id' must be snake_case, not a reserved word",
        },
        {"field": "(the whole blueprint)", "message": "entity names repeat"},
        {"field": "version", "message": "too short"},
        {"field": "entities[2].name", "message": "must be CamelCase"},
    ]
    assert editors.field_errors(None) == [] and editors.field_errors({"title": "x"}) == []


def test_what_if_body_branches_from_the_chosen_version() -> None:
    body = editors.what_if_body(BLUEPRINT, "T0", "prj_1", "ver_1")
    assert body == {"blueprint": BLUEPRINT, "tier": "T0", "project_id": "prj_1",
                    "parent_version_id": "ver_1"}  # fmt: skip
    assert "parent_version_id" not in editors.what_if_body(BLUEPRINT, "T0", "prj_1", "")


def test_listing_form_becomes_the_api_body() -> None:
    form = {"title": " Starter kit ", "summary": "s", "description": "d", "category": "web",
            "tags": "Python, fastapi,python, ", "license": "MIT", "price": "12.50",
            "kind": "template"}  # fmt: skip
    body = editors.listing_body(form, creating=True)
    assert body["title"] == "Starter kit" and body["kind"] == "template"
    assert body["tags"] == ["python", "fastapi"]
    assert body["price"] == {"amount": 1250, "currency": "USD"}
    patch = editors.listing_body({**form, "price": "0"}, creating=False)
    assert "kind" not in patch and patch["price"]["amount"] == 0
    assert editors.listing_body({**form, "price": ""}, creating=False)["price"]["amount"] == 0
    with pytest.raises(editors.EditorError) as exc:
        editors.listing_body({**form, "price": "twelve"}, creating=True)
    assert "price" in exc.value.errors


def test_listing_state_in_words() -> None:
    assert editors.listing_state({"status": "draft"}).startswith("Draft: add a version")
    assert editors.listing_state({"status": "published"}).startswith("Published")
    assert editors.listing_state({"status": "odd"}) == "odd"


def _render(name: str, **ctx: Any) -> str:
    return templates.get_template(name).render(sess=None, csrf="tok", path="/app", flash=[], **ctx)


def test_blueprint_page_shows_the_text_the_errors_and_the_branch_choice() -> None:
    gen = {"id": "gen_1", "project_id": "prj_1", "tier": "T0", "version_id": "ver_2"}
    versions = [{"id": "ver_1", "number": 1, "branch": "main"},
                {"id": "ver_2", "number": 2, "branch": "main"}]  # fmt: skip
    html = _render("blueprint.html", gen=gen, versions=versions, text='{"a": "<b>"}', tier="T0",
                   parent="ver_2", tiers=("T0", "T1"), problem=None, idem="i",
                   errors=[{"field": "entities[0].name", "message": "must be CamelCase"}])  # fmt: skip
    assert 'name="csrf_token" value="tok"' in html
    assert "&lt;b&gt;" in html and "<b>" not in html  # the JSON is escaped
    assert '<option value="ver_2" selected>' in html
    assert "<code>entities[0].name</code>: must be CamelCase" in html
    assert 'aria-invalid="true"' in html


def test_listing_editor_page_for_a_draft_and_for_a_new_listing() -> None:
    listing = {"id": "lst_1", "title": "Kit", "status": "draft", "price": {"amount": 900},
               "tags": ["a", "b"], "category": "api", "license": "MIT", "summary": "",
               "description": "", "current_version": None,
               "review": {"passed": False, "reasons": ["summary too short"]}}  # fmt: skip
    common = {"kinds": editors.LISTING_KINDS, "categories": editors.LISTING_CATEGORIES,
              "licenses": editors.LISTING_LICENSES, "problem": None, "errors": [],
              "review": None, "form": {}}  # fmt: skip
    html = _render("listing_edit.html", listing=listing, state=editors.listing_state(listing),
                   versions=[], gen_versions=[{"id": "ver_1", "label": "kit v1 (ver_1)"}],
                   **common)  # fmt: skip
    assert html.count('name="csrf_token"') == 3  # details, version, publish
    assert "Draft: add a version" in html and "summary too short" in html
    assert 'value="9.00"' in html and 'value="a, b"' in html
    assert '<option value="api" selected>' in html
    new = _render("listing_edit.html", listing=None, state="", versions=[], gen_versions=[],
                  **{**common, "form": {"kind": "template"}})  # fmt: skip
    assert 'action="/app/marketplace/creator/listings"' in new and 'id="kind"' in new
    assert "publish-form" not in new
