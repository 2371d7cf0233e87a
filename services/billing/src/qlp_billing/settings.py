from __future__ import annotations

from pydantic import Field
from pydantic_settings import SettingsConfigDict

from qlp_kit.settings import ServiceSettings


class BillingSettings(ServiceSettings):
    model_config = SettingsConfigDict(
        env_prefix="QLP_BILLING_", extra="ignore", populate_by_name=True
    )
    service_name: str = "billing"
    #: Consumer groups are "<prefix>.<purpose>" (tests run side by side with another
    #: prefix so they do not share partitions with a running platform).
    consumer_group_prefix: str = "billing"
    #: Metering reads large batches (one insert_many per chunk of the batch).
    consumer_batch_max_records: int = 1000

    #: Late usage events are accepted this long after their period ended; invoices
    #: are finalized when it has passed.
    usage_grace_s: int = 3 * 24 * 3600
    #: A quota reservation not committed or released by then is released (EXPIRED).
    reservation_ttl_s: int = 15 * 60
    #: How often the background jobs run (sweeper, period roll, invoices, ledger flush).
    sweep_interval_s: float = 5.0
    background_enabled: bool = True
    #: Platform fee on GPU jobs when the request names none (500 = 5 %).
    gpu_platform_fee_bps: int = Field(default=500, ge=0, le=10_000)
    #: Platform fee on marketplace sales when the request names none (3000 = 30 %).
    marketplace_platform_fee_bps: int = Field(default=3000, ge=0, le=10_000)
    #: Largest single escrow hold (minor units); above it: LIMIT_EXCEEDED.
    escrow_max_hold: int = 10_000_000
    #: Largest single top-up through the default provider (minor units).
    max_topup: int = 10_000_000
    #: Payment provider behind the port: "prepaid" records top-ups in the ledger.
    payment_provider: str = "prepaid"
    #: Stripe webhook signing secrets (comma-separated, several during rotation).
    stripe_webhook_secrets: str = ""
    #: Secret API key for the stripe provider (from a Kubernetes Secret).
    stripe_api_key: str = ""
    stripe_webhook_tolerance_s: int = 300

    #: Who issues the invoices (shown on every invoice; lines of the address by "\n").
    invoice_issuer_name: str = "QuantumLayer Platform, Inc."
    invoice_issuer_address: str = "548 Market Street\nSan Francisco, CA 94104\nUnited States"
    invoice_issuer_email: str = "billing@quantumlayer.dev"
    #: Invoices are due this many days after they are issued.
    invoice_due_days: int = Field(default=14, ge=0, le=365)
    #: HMAC key of signed invoice links; empty: derived from the internal auth secret.
    invoice_link_secret: str = ""
    #: How long a signed invoice link opens the invoice (default 7 days; at most 30).
    invoice_link_ttl_s: int = Field(default=7 * 24 * 3600, ge=60, le=30 * 24 * 3600)
