"""The quality gate on tiny projects (real subprocesses): failures, lint findings, the
wall clock and the network namespace are reported, never invented."""

from __future__ import annotations

from qlp_generation.gate import Limits, run_gate

PYPROJECT = b'[tool.ruff.lint]\nselect = ["F"]\n'
OK_TEST = b"def test_ok():\n    assert 1 + 1 == 2\n"
APP = {"app/__init__.py": b"", "pyproject.toml": PYPROJECT}


def test_passing_project_passes_with_counts_and_limits() -> None:
    r = run_gate({**APP, "tests/test_a.py": OK_TEST})
    assert r.passed and (r.tests_passed, r.tests_failed, r.lint_findings) == (1, 0, 0)
    assert {"cpu", "memory", "wall"} <= set(r.limits_applied)
    assert set(r.limits_applied).isdisjoint(r.limits_not_applied)
    assert r.duration_ms > 0


def test_a_failing_test_fails_the_gate() -> None:
    bad = OK_TEST + b"\n\ndef test_bad():\n    assert 1 == 2\n"
    r = run_gate({**APP, "tests/test_a.py": bad})
    assert not r.passed and (r.tests_passed, r.tests_failed) == (1, 1)
    assert r.failure.startswith("tests failed")


def test_lint_findings_fail_the_gate() -> None:
    r = run_gate({**APP, "tests/test_a.py": b"import os\n\n" + OK_TEST})
    assert not r.passed and r.lint_findings == 1 and "F401" in r.lint_output


def test_no_tests_is_no_pass() -> None:
    r = run_gate(dict(APP))
    assert not r.passed and r.tests_passed == 0


def test_the_wall_clock_stops_the_run() -> None:
    slow = b"import time\n\ndef test_slow():\n    time.sleep(60)\n"
    r = run_gate({**APP, "tests/test_a.py": slow}, Limits(wall_s=3))
    assert not r.passed and r.failure == "wall-clock limit reached"


def test_the_network_is_cut_where_the_machine_allows_it() -> None:
    probe = (
        b"import errno, socket\n\n"
        b"def test_no_route_out():\n"
        b"    s = socket.socket()\n"
        b"    s.settimeout(5)\n"
        b"    try:\n"
        b"        s.connect(('192.0.2.1', 80))\n"
        b"    except OSError as exc:\n"
        b"        assert exc.errno == errno.ENETUNREACH, exc\n"
        b"    else:\n"
        b"        raise AssertionError('connected')\n"
    )
    r = run_gate({**APP, "tests/test_a.py": probe})
    if "network" in r.limits_not_applied:
        assert "network" not in r.limits_applied  # said so, not pretended
    else:
        assert r.passed, r.output_tail
