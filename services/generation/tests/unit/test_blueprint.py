"""The deterministic extractor: many varied requests, every domain, the generic fallback."""

from __future__ import annotations

import pytest
from pydantic import ValidationError

from qlp_generation.blueprint import Blueprint, extract, library, parse_field

CASES = [
    ("build me a SaaS for project management", "project-management"),
    ("a kanban board with tasks and sprints for my team", "project-management"),
    ("CRM to track leads and deals through a sales pipeline", "crm"),
    ("appointment booking for a barber shop with reminders", "booking"),
    ("a marketplace where sellers post listings and buyers pay a commission", "marketplace"),
    ("an online store with products, cart and checkout", "ecommerce"),
    ("helpdesk for support tickets with SLA", "helpdesk"),
    ("warehouse inventory with suppliers and purchase orders", "inventory"),
    ("online courses with lessons and quizzes for students", "learning"),
    ("send invoices to clients and track payments", "invoicing"),
    ("equipment rental and tool library loans", "lending"),
    ("a clinic app for patients and doctors", "healthcare"),
    ("payroll and leave requests for employees", "hr-payroll"),
    ("sell tickets for a concert venue with waitlist", "events-ticketing"),
    ("a community forum with posts and moderators", "community"),
    ("track our fleet of trucks and drivers", "fleet-assets"),
    ("manage rental properties, leases and tenants for a landlord", "real-estate"),
    ("restaurant menu and table orders for the kitchen", "restaurant"),
    ("gym memberships and yoga classes with trainers", "fitness"),
]


def test_the_library_covers_at_least_15_domains() -> None:
    assert len(library().patterns) >= 15


@pytest.mark.parametrize(("prompt", "domain"), CASES)
def test_requests_map_to_their_domain(prompt: str, domain: str) -> None:
    bp = extract(prompt)
    assert bp.domain == domain, bp.explanation
    assert bp.entities and bp.roles
    # every reference names an entity of the blueprint
    names = {e.name for e in bp.entities}
    assert all(f.target in names for e in bp.entities for f in e.fields if f.target)


def test_features_regulations_business_model_and_scale_are_read() -> None:
    bp = extract(
        "a marketplace for EU users under GDPR with refunds, ratings and CSV exports, "
        "a transaction fee, for millions of buyers, with a SOX audit trail"
    )
    assert {"refunds", "ratings", "exports"} <= set(bp.features)
    assert bp.regulations == ["gdpr", "sox"]
    assert (bp.business_model, bp.monetization, bp.scale) == (
        "marketplace",
        "transaction_fee",
        "large",
    )


def test_health_data_is_protected_under_hipaa() -> None:
    bp = extract("telehealth for patients")
    assert bp.regulations == ["hipaa"]
    patient = next(e for e in bp.entities if e.name == "Patient")
    assert [f.name for f in patient.fields if f.protected] == ["date_of_birth", "diagnosis"]


def test_unknown_domains_get_a_generic_blueprint_from_their_nouns() -> None:
    bp = extract("an app to log beehives and honey harvests for apiaries")
    assert bp.domain == "generic" and bp.pattern_id == "generic"
    assert [e.name for e in bp.entities] == ["Beehive", "Honey", "Harvest"]
    assert bp.entities[1].fields[-1].target == "Beehive"
    assert extract("!!!").entities[0].name == "Record"


def test_t0_is_one_component_without_references() -> None:
    bp = extract("CRM with deals", "T0")
    assert len(bp.entities) == 1
    assert not any(f.target for f in bp.entities[0].fields)


def test_ties_are_broken_by_measured_evidence() -> None:
    prompt = "tickets"  # helpdesk and events-ticketing both match once
    default = extract(prompt)
    other = "events-ticketing" if default.domain == "helpdesk" else "helpdesk"
    chosen = extract(prompt, evidence={other: 0.9})
    assert chosen.domain == other and "gate pass rate 0.90" in chosen.explanation


def test_extraction_is_deterministic() -> None:
    p = "booking for a dentist with waitlists and notifications"
    assert extract(p) == extract(p)


def test_edited_blueprints_are_validated() -> None:
    bp = extract("CRM").model_dump()
    bp["entities"][1]["fields"].append({"name": "class", "type": "str"})
    with pytest.raises(ValidationError):
        Blueprint.model_validate(bp)
    bp = extract("CRM").model_dump()
    bp["entities"][0]["fields"].append({"name": "owner_id", "type": "ref", "target": "Nobody"})
    with pytest.raises(ValidationError, match="unknown entity"):
        Blueprint.model_validate(bp)
    assert parse_field("notes:text?!").protected and not parse_field("notes:text?!").required


def test_edited_text_that_would_be_rendered_into_code_is_refused() -> None:
    bp = extract("CRM").model_dump()
    for key, bad in (("title", 'CRM"""; import os'), ("pattern_id", "x y"), ("features", ["a-b"])):
        with pytest.raises(ValidationError):
            Blueprint.model_validate({**bp, key: bad})
    assert Blueprint.model_validate({**bp, "roles": ["viewer", "admin"]}).roles == [
        "admin",
        "viewer",
    ]
