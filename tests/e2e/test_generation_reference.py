"""Every request of the reference suite (qlp_generation.reference: different domains,
every tier, each regulation) becomes a project that passes its own quality gate: lint,
tests against a real MongoDB-wire server, under the gate's limits."""

from __future__ import annotations

import pytest

from qlp_generation.blueprint import Tier, extract
from qlp_generation.gate import run_gate
from qlp_generation.reference import REFERENCE
from qlp_generation.render import render

pytestmark = [pytest.mark.e2e, pytest.mark.timeout(300)]


@pytest.mark.parametrize(("prompt", "tier"), REFERENCE)
def test_reference_request_passes_its_own_gate(prompt: str, tier: Tier) -> None:
    bp = extract(prompt, tier)
    report = run_gate(render(bp, tier))
    assert report.passed, (report.failure, report.lint_output, report.output_tail)
    assert report.tests_failed == 0 and report.tests_passed >= (6 if tier == "T0" else 10)
    assert report.coverage_bps >= 8000, report.coverage_bps
    for reg in bp.regulations:
        assert reg in ("gdpr", "hipaa", "sox")
