"""The org's billing profile: the name, e-mail, address and tax id its invoices are
addressed to. Kept on the subscription document (one per org) under ``profile``;
the org's name and billing e-mail from ``OrgCreated`` are the defaults."""

from __future__ import annotations

from typing import Any

from qlp_billing.base import BillingBase
from qlp_billing.invoice_docs import ADDRESS_FIELDS, bill_to

Doc = dict[str, Any]


class Profiles(BillingBase):
    async def record_org(self, org_id: str, name: str, email: str) -> None:
        """What identity announced about the org (idempotent; never bumps the version,
        so it races no guarded subscription write)."""
        sets = {k: v for k, v in (("org_name", name), ("org_email", email)) if v}
        if sets:
            await self.store.update_subscription(org_id, {}, {"$set": sets})

    async def billing_profile(self, org_id: str) -> Doc:
        return bill_to(await self.subscription(org_id), org_id)

    async def set_billing_profile(self, org_id: str, profile: Doc) -> Doc:
        await self.subscription(org_id)  # opened if it is not yet
        address = profile.get("address") or {}
        doc = {
            "name": str(profile.get("name") or ""),
            "email": str(profile.get("email") or ""),
            "address": {k: str(address.get(k) or "") for k in ADDRESS_FIELDS},
            "tax_id": str(profile.get("tax_id") or ""),
        }
        await self.store.update_subscription(org_id, {}, {"$set": {"profile": doc}})
        return await self.billing_profile(org_id)
