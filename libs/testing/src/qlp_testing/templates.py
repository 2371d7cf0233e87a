"""A small, valid marketplace template (a pattern pack) for tests: a one-module
project whose lint and one test pass in generation's quality gate in a few seconds."""

from __future__ import annotations

from qlp_kit.packs import PackManifest, write_pack

TEMPLATES = {
    "README.md.j2": "# {{ bp.title }}\n\nBuilt from the tiny-service template.\n",
    "app/__init__.py.j2": "",
    "app/main.py.j2": (
        "TITLE = {{ bp.title | py }}\n"
        "ENTITIES = {{ plurals | py }}\n\n\n"
        "def describe() -> str:\n"
        '    return f"{TITLE}: {len(ENTITIES)} collections"\n'
    ),
    "tests/__init__.py.j2": "",
    "tests/test_main.py.j2": (
        "from app.main import ENTITIES, describe\n\n\n"
        "def test_describe() -> None:\n"
        '    assert describe().endswith(f"{len(ENTITIES)} collections")\n'
    ),
}


def tiny_pack(pack_id: str = "tiny-service", version: str = "1.0.0") -> bytes:
    """The pack as a tar.gz archive (as a creator uploads it)."""
    return write_pack(
        PackManifest(pack_id, version, "A one-module service with its test", ("tiny",)),
        TEMPLATES,
    )
