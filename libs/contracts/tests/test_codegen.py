"""Drift and compatibility gates of the contracts (regenerating must change nothing)."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from qlp_contracts import codegen
from qlp_contracts.codegen import (
    CodegenError,
    check_bindings,
    check_compat,
    check_snapshot,
    find_root,
    generate,
    render_bindings,
    write_snapshot,
)

USAGE = "qlp/usage/v1/events.proto"
BILLING = "qlp/billing/v1/events.proto"


def edit(root: Path, relative: str, old: str, new: str) -> None:
    """Replace exactly one occurrence of ``old`` in proto/<relative>."""
    path = root / "proto" / relative
    text = path.read_text(encoding="utf-8")
    assert text.count(old) == 1, f"{old!r} must occur once in {relative}"
    path.write_text(text.replace(old, new), encoding="utf-8")


def test_committed_bindings_match_proto(repo_root: Path) -> None:
    assert check_bindings(repo_root) == []


def test_committed_snapshot_matches_proto(repo_root: Path) -> None:
    assert check_snapshot(repo_root) == []


def test_current_proto_is_compatible_with_snapshot(repo_root: Path) -> None:
    assert check_compat(repo_root) == []


def test_generation_is_deterministic(repo_root: Path) -> None:
    first = render_bindings(repo_root / "proto")
    assert first == render_bindings(repo_root / "proto")
    for relative, content in first.items():
        # No machine-specific paths may leak into generated files.
        assert str(repo_root).encode() not in content, relative


def test_every_package_dir_has_an_init(repo_root: Path) -> None:
    files = render_bindings(repo_root / "proto")
    dirs = {name.rsplit("/", 1)[0] for name in files}
    assert all(f"{d}/__init__.py" in files for d in dirs)
    assert "qlp/identity/v1/events_pb2.py" in files
    assert "qlp/identity/v1/events_pb2.pyi" in files


def test_generate_then_check_in_a_scratch_root(proto_copy: Path) -> None:
    changed = generate(proto_copy)
    assert "qlp/usage/v1/events_pb2.py" in changed
    assert generate(proto_copy) == []  # idempotent
    assert check_bindings(proto_copy) == []

    bindings = proto_copy / "libs/contracts/src/qlp"
    (bindings / "usage/v1/events_pb2.py").write_text("# edited by hand\n")
    (bindings / "usage/v1/old_pb2.py").write_text("# from a deleted proto\n")
    problems = "\n".join(check_bindings(proto_copy))
    assert "differs: qlp/usage/v1/events_pb2.py" in problems
    assert "+# -*- coding: utf-8 -*-" in problems  # a diff is shown
    assert "stale: qlp/usage/v1/old_pb2.py" in problems

    edit(
        proto_copy,
        USAGE,
        "  map<string, string> attributes = 6;\n",
        "  map<string, string> attributes = 6;\n  string region = 7;\n",
    )
    assert "differs: qlp/usage/v1/events_pb2.pyi" in "\n".join(check_bindings(proto_copy))

    generate(proto_copy)
    assert check_bindings(proto_copy) == []
    assert not (bindings / "usage/v1/old_pb2.py").exists()


def test_generate_removes_bindings_of_deleted_protos(proto_copy: Path) -> None:
    generate(proto_copy)
    for name in ("events.proto", "types.proto"):
        (proto_copy / "proto/qlp/failover/v1" / name).unlink()
    generate(proto_copy)
    assert not (proto_copy / "libs/contracts/src/qlp/failover").exists()
    assert check_bindings(proto_copy) == []


@pytest.mark.parametrize(
    ("relative", "old", "new", "expected"),
    [
        pytest.param(
            USAGE,
            "  string subject_id = 5;\n",
            "",
            "qlp.usage.v1.UsageRecorded field 5 'subject_id': removed",
            id="remove-field",
        ),
        pytest.param(
            USAGE,
            "string subject_id = 5;",
            "string resource_id = 5;",
            "qlp.usage.v1.UsageRecorded field 5: number reused with another name: "
            "was 'subject_id', now 'resource_id'",
            id="reuse-number-with-other-name",
        ),
        pytest.param(
            USAGE,
            "int64 quantity = 3;",
            "int32 quantity = 3;",
            "qlp.usage.v1.UsageRecorded field 3 'quantity': type changed from int64 to int32",
            id="change-scalar-type",
        ),
        pytest.param(
            USAGE,
            "int64 quantity = 3;",
            "string quantity = 3;",
            "type changed from int64 to string",
            id="change-scalar-to-string",
        ),
        pytest.param(
            BILLING,
            "qlp.common.v1.Money amount = 4;\n  EscrowRejectionReason",
            "qlp.common.v1.Actor amount = 4;\n  EscrowRejectionReason",
            "type changed from qlp.common.v1.Money to qlp.common.v1.Actor",
            id="change-message-type",
        ),
        pytest.param(
            USAGE,
            "string subject_id = 5;",
            "repeated string subject_id = 5;",
            "label changed from optional to repeated",
            id="change-label",
        ),
        pytest.param(
            USAGE,
            "map<string, string> attributes = 6;",
            "map<string, int64> attributes = 6;",
            "qlp.usage.v1.UsageRecorded.AttributesEntry field 2 'value': type changed",
            id="change-map-value-type",
        ),
        pytest.param(
            "qlp/identity/v1/events.proto",
            "// An API key can no longer authenticate.\nmessage ApiKeyRevoked {",
            "message ApiKeyRevokedRenamed {",
            "qlp.identity.v1.ApiKeyRevoked: message removed",
            id="remove-message",
        ),
        pytest.param(
            "qlp/identity/v1/types.proto",
            "  ROLE_BILLING = 5;\n",
            "",
            "qlp.identity.v1.Role value 5 'ROLE_BILLING': removed",
            id="remove-enum-value",
        ),
        pytest.param(
            BILLING,
            "  oneof reference {\n    string invoice_id = 4;\n    // A marketplace purchase",
            "  string invoice_id = 4;\n  oneof reference {\n    // A marketplace purchase",
            "qlp.billing.v1.PaymentSucceeded field 4 'invoice_id': oneof membership changed",
            id="move-out-of-oneof",
        ),
    ],
)
def test_breaking_change_fails_compat(
    proto_copy: Path, relative: str, old: str, new: str, expected: str
) -> None:
    edit(proto_copy, relative, old, new)
    violations = [str(v) for v in check_compat(proto_copy)]
    assert any(expected in v for v in violations), violations


def test_reserved_number_cannot_be_reused(proto_copy: Path) -> None:
    # Retire field 5 the recommended way in a first release...
    edit(
        proto_copy, USAGE, "  string subject_id = 5;\n", '  reserved 5;\n  reserved "subject_id";\n'
    )
    assert write_snapshot(proto_copy, allow_breaking=True) == []
    # ...then reusing the reserved number (and dropping the reservation) is caught.
    edit(proto_copy, USAGE, '  reserved 5;\n  reserved "subject_id";\n', "  string subject = 5;\n")
    violations = [str(v) for v in check_compat(proto_copy)]
    assert any("uses number 5, which was reserved" in v for v in violations), violations


def test_additions_are_compatible(proto_copy: Path) -> None:
    edit(
        proto_copy,
        USAGE,
        "  map<string, string> attributes = 6;\n",
        "  map<string, string> attributes = 6;\n  string region = 7;\n",
    )
    edit(
        proto_copy,
        "qlp/identity/v1/types.proto",
        "  ROLE_BILLING = 5;\n",
        "  ROLE_BILLING = 5;\n  ROLE_AUDITOR = 6;\n",
    )
    with (proto_copy / "proto" / USAGE).open("a", encoding="utf-8") as f:
        f.write("\nmessage UsageCorrected {\n  string org_id = 1;\n  string meter = 2;\n}\n")
    assert check_compat(proto_copy) == []


def test_snapshot_refuses_breaking_changes_unless_allowed(proto_copy: Path) -> None:
    snapshot = proto_copy / "proto" / codegen.SNAPSHOT_NAME
    before = snapshot.read_text()
    edit(proto_copy, USAGE, "  string subject_id = 5;\n", "")
    assert write_snapshot(proto_copy) != []
    assert snapshot.read_text() == before
    assert write_snapshot(proto_copy, allow_breaking=True) == []
    assert snapshot.read_text() != before
    assert check_compat(proto_copy) == []


def test_compat_against_another_snapshot(proto_copy: Path, tmp_path: Path) -> None:
    base = tmp_path / "base_snapshot.json"
    base.write_bytes((proto_copy / "proto" / codegen.SNAPSHOT_NAME).read_bytes())
    edit(proto_copy, USAGE, "  string subject_id = 5;\n", "")
    assert write_snapshot(proto_copy, allow_breaking=True) == []
    assert check_compat(proto_copy) == []
    assert check_compat(proto_copy, base) != []


def test_protoc_errors_are_reported(proto_copy: Path) -> None:
    edit(proto_copy, USAGE, "int64 quantity = 3;", "int64 quantity = 3")
    with pytest.raises(CodegenError, match="protoc failed"):
        check_compat(proto_copy)


def test_unused_imports_are_errors(proto_copy: Path) -> None:
    edit(
        proto_copy,
        USAGE,
        'import "google/protobuf/timestamp.proto";\n',
        'import "google/protobuf/timestamp.proto";\nimport "qlp/common/v1/money.proto";\n',
    )
    with pytest.raises(CodegenError, match=r"money\.proto"):
        render_bindings(proto_copy / "proto")


def test_find_root(repo_root: Path) -> None:
    assert (repo_root / "proto" / "qlp").is_dir()
    assert find_root(repo_root / "proto" / "qlp" / "usage") == repo_root
    with pytest.raises(CodegenError, match="--root"):
        find_root(Path("/"))


def test_cli_exit_codes(proto_copy: Path, capsys: pytest.CaptureFixture[str]) -> None:
    root = ["--root", str(proto_copy)]
    assert codegen.main([*root, "compat"]) == 0
    assert codegen.main([*root, "generate"]) == 0
    assert codegen.main([*root, "check"]) == 0
    edit(proto_copy, USAGE, "string subject_id = 5;", "string resource_id = 5;")
    assert codegen.main([*root, "compat"]) == 1
    assert codegen.main([*root, "snapshot"]) == 1
    assert codegen.main([*root, "check"]) == 1
    err = capsys.readouterr().err
    assert "number reused with another name" in err
    assert "differs: qlp/usage/v1/events_pb2.py" in err
    assert "stale: proto/descriptor_snapshot.json" in err
    assert codegen.main(["--root", str(proto_copy / "nowhere"), "compat"]) == 2


def test_module_entry_point(repo_root: Path) -> None:
    result = subprocess.run(
        [sys.executable, "-m", "qlp_contracts.codegen", "--root", str(repo_root), "compat"],
        capture_output=True,
        text=True,
        check=False,
    )
    assert result.returncode == 0, result.stderr
