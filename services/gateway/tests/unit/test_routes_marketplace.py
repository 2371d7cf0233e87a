"""Marketplace artifact uploads get the upload body limit; other marketplace routes the
default one."""

from __future__ import annotations

from qlp_gateway.routes import body_limit, resolve


def test_marketplace_versions_take_uploads() -> None:
    upload = resolve("/v1/marketplace/listings/lst_1/versions")
    listing = resolve("/v1/marketplace/listings/lst_1")
    nested = resolve("/v1/marketplace/listings/lst_1/versions/extra")
    assert upload and listing and nested
    assert upload.service == "marketplace" and not upload.public
    assert body_limit(upload, 1, 64) == 64
    assert body_limit(listing, 1, 64) == 1
    assert body_limit(nested, 1, 64) == 1
