"""The reference suite: varied requests (different domains, every tier, each
regulation, every field type) whose generated projects must pass their own gate. Unit
tests render them lint-clean, the e2e suite gates every one, the benchmark times them."""

from __future__ import annotations

from qlp_generation.blueprint import Tier

REFERENCE: list[tuple[str, Tier]] = [
    ("build me a SaaS for project management", "T1"),
    ("a CRM for a small sales team", "T0"),
    ("appointment booking for a dentist with reminders and GDPR for EU customers", "T2"),
    ("a marketplace for handmade goods with a commission per transaction", "T2"),
    ("an online store selling coffee beans", "T1"),
    ("helpdesk tickets", "T1"),
    ("warehouse inventory with purchase orders and SOX audit trail", "T2"),
    ("online courses for students, freemium", "T1"),
    ("invoicing for freelancers, SOX financial controls and GDPR", "T3"),
    ("telehealth clinic for patients under HIPAA", "T2"),
    ("payroll and leave requests for employees", "T2"),
    ("event ticketing with waitlists and refunds", "T1"),
    ("an app to log beehives and honey harvests", "T1"),
    ("gym memberships and classes with trainers", "T0"),
    (
        "global fleet tracking for millions of vehicles with maintenance approvals, "
        "exports and file uploads",
        "T3",
    ),
    (
        "a regional clinic network with thousands of patients, HIPAA and GDPR, "
        "appointment reminders and document uploads",
        "T2",
    ),
]
