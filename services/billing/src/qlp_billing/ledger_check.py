"""Verify the whole ledger: ``python -m qlp_billing.ledger_check`` (exit 1 on a problem).

Every transaction balances, no account is below what its rules allow, and every
wallet's cached balances equal the sums of its ledger postings.
"""

from __future__ import annotations

import asyncio
import json
import sys

from qlp_billing.repository import Store
from qlp_billing.service import Billing
from qlp_billing.settings import BillingSettings
from qlp_kit.mongo import Mongo
from qlp_kit.settings import load_settings


async def run(settings: BillingSettings) -> dict[str, object]:
    mongo = Mongo(settings.mongodb_url, settings.database_name)
    try:
        report = await Billing(Store(mongo.db), settings).ledger_check()
        return report.to_dict()
    finally:
        await mongo.close()


def main() -> None:
    settings = load_settings(BillingSettings)
    report = asyncio.run(run(settings))
    print(json.dumps(report, indent=2))
    sys.exit(0 if report["ok"] else 1)


if __name__ == "__main__":
    main()
