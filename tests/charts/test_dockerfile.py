"""Static checks of infra/docker/service.Dockerfile (no Docker engine on the dev machines).

The file is parsed, not built: multi-stage, pinned base images (no `latest`, no
untagged FROM), a numeric non-root USER in the image that runs, the uv
workspace sync from the lock, and the platform's process entry.
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass, field
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]
DOCKERFILE = REPO / "infra/docker/service.Dockerfile"


@dataclass
class Stage:
    image: str
    name: str | None
    instructions: list[tuple[str, str]] = field(default_factory=list)

    def all(self, keyword: str) -> list[str]:
        return [args for kw, args in self.instructions if kw == keyword]


def _instructions(text: str) -> list[tuple[str, str]]:
    """(KEYWORD, arguments) pairs with line continuations joined and comments dropped."""
    logical: list[str] = []
    pending = ""
    for line in text.splitlines():
        stripped = line.strip()
        if not pending and (not stripped or stripped.startswith("#")):
            continue
        if stripped.startswith("#"):
            continue  # a comment inside a continued instruction
        if stripped.endswith("\\"):
            pending += stripped[:-1] + " "
            continue
        logical.append(pending + stripped)
        pending = ""
    assert not pending, "dangling line continuation"
    out = []
    for line in logical:
        keyword, _, args = line.partition(" ")
        out.append((keyword.upper(), args.strip()))
    return out


def _parse(text: str) -> tuple[dict[str, str], list[Stage]]:
    """Global ARG defaults and the build stages."""
    global_args: dict[str, str] = {}
    stages: list[Stage] = []
    for keyword, args in _instructions(text):
        if keyword == "FROM":
            m = re.fullmatch(r"(?:--platform=\S+\s+)?(\S+)(?:\s+AS\s+(\S+))?", args, re.IGNORECASE)
            assert m, f"unparsable FROM {args}"
            image = re.sub(
                r"\$\{?(\w+)\}?", lambda v: global_args.get(v.group(1), v.group(0)), m.group(1)
            )
            stages.append(Stage(image=image, name=m.group(2)))
        elif not stages:
            assert keyword == "ARG", f"{keyword} before the first FROM"
            name, _, default = args.partition("=")
            global_args[name] = default
        else:
            stages[-1].instructions.append((keyword, args))
    return global_args, stages


@pytest.fixture(scope="module")
def parsed() -> tuple[dict[str, str], list[Stage]]:
    return _parse(DOCKERFILE.read_text())


def test_is_multi_stage_with_named_stages(parsed: tuple[dict[str, str], list[Stage]]) -> None:
    _, stages = parsed
    assert len(stages) >= 2
    names = [s.name for s in stages]
    assert "builder" in names and names[-1] == "runtime"
    runtime = stages[-1]
    copies = runtime.all("COPY")
    assert any("--from=builder" in c and "/app/.venv" in c for c in copies)


def test_base_images_are_pinned(parsed: tuple[dict[str, str], list[Stage]]) -> None:
    global_args, stages = parsed
    stage_names = {s.name for s in stages if s.name}
    for stage in stages:
        if stage.image in stage_names:
            continue
        assert "$" not in stage.image, f"unresolved base image {stage.image}"
        assert ":" in stage.image.rsplit("/", 1)[-1] or "@sha256:" in stage.image, stage.image
        assert not stage.image.endswith(":latest"), stage.image
    assert re.fullmatch(r"ghcr\.io/astral-sh/uv:\d+\.\d+\.\d+", global_args["UV_IMAGE"])
    assert global_args["PYTHON_IMAGE"].startswith("python:3.11")
    assert "slim" in global_args["PYTHON_IMAGE"]
    assert ":latest" not in DOCKERFILE.read_text()


def test_runs_as_numeric_non_root_user(parsed: tuple[dict[str, str], list[Stage]]) -> None:
    _, stages = parsed
    users = stages[-1].all("USER")
    assert users, "the runtime stage must set USER"
    m = re.fullmatch(r"(\d+)(?::(\d+))?", users[-1])
    assert m, f"USER {users[-1]} must be numeric (runAsNonRoot checks the uid)"
    assert int(m.group(1)) == 10001 and int(m.group(2) or m.group(1)) != 0


def test_builds_one_service_from_the_workspace_lock(
    parsed: tuple[dict[str, str], list[Stage]],
) -> None:
    _, stages = parsed
    builder = next(s for s in stages if s.name == "builder")
    assert "SERVICE" in builder.all("ARG")
    assert any("--from=uv" in c and "/uv" in c for c in builder.all("COPY"))
    syncs = [r for r in builder.all("RUN") if "uv sync" in r]
    assert syncs
    for run in syncs:
        for flag in ("--frozen", "--no-dev", "--no-editable", '"--package qlp-${SERVICE}"'):
            assert flag in run, (flag, run)
    assert any("UV_PROJECT_ENVIRONMENT=/app/.venv" in e for e in builder.all("ENV"))


def test_runtime_is_read_only_friendly_with_the_platform_entry(
    parsed: tuple[dict[str, str], list[Stage]],
) -> None:
    _, stages = parsed
    runtime = stages[-1]
    env = " ".join(runtime.all("ENV"))
    for setting in (
        "PYTHONDONTWRITEBYTECODE=1",
        "HOME=/tmp",
        "TMPDIR=/tmp",
        "QLP_SERVICE=${SERVICE}",
    ):
        assert setting in env, setting
    assert json.loads(runtime.all("ENTRYPOINT")[-1]) == ["python", "-m", "qlp_kit.serve"]
    assert "8000" in runtime.all("EXPOSE")
    assert not any("pip install" in r for r in runtime.all("RUN")), "install in the builder"


def test_build_context_ignore_file_sits_next_to_the_dockerfile() -> None:
    ignore = DOCKERFILE.with_name(DOCKERFILE.name + ".dockerignore").read_text().split()
    assert "**/.venv" in ignore and ".git" in ignore
    assert "uv.lock" not in ignore and "pyproject.toml" not in ignore
