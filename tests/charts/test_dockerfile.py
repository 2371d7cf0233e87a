"""Static checks of the service images (there is no Docker engine on the dev machines).

Every service package (services/*) is built from the one recipe
infra/docker/service.Dockerfile with ``--build-arg SERVICE=<name>``. Each image's
Dockerfile is parsed with dockerfile-parse, with that build argument, and checked:
multi-stage, pinned base images, a numeric non-root USER in the stage that runs, no
secrets in the recipe or the build context, the uv workspace sync from the lock, and
an entry point (the image's, and the one its chart runs) that exists in the package.
"""

from __future__ import annotations

import json
import re
import tomllib
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest
import yaml
from dockerfile_parse import DockerfileParser

REPO = Path(__file__).resolve().parents[2]
DOCKERFILE = REPO / "infra/docker/service.Dockerfile"
IGNORE_FILE = DOCKERFILE.with_name(DOCKERFILE.name + ".dockerignore")
SERVICES = sorted(p.parent.name for p in REPO.glob("services/*/pyproject.toml"))
SECRET_WORDS = re.compile(r"(PASSWORD|PASSWD|SECRET|TOKEN|API_?KEY|PRIVATE_?KEY|CREDENTIAL)", re.I)


@dataclass
class Stage:
    image: str
    name: str | None
    instructions: list[tuple[str, str]] = field(default_factory=list)

    def all(self, keyword: str) -> list[str]:
        return [value for kw, value in self.instructions if kw == keyword]


@dataclass
class Image:
    service: str
    parser: DockerfileParser
    global_args: dict[str, str]
    stages: list[Stage]


def parse(service: str) -> Image:
    parser = DockerfileParser(path=str(DOCKERFILE), build_args={"SERVICE": service})
    global_args: dict[str, str] = {}
    stages: list[Stage] = []
    parents = iter(parser.parent_images)  # FROM images with build args substituted
    for item in parser.structure:
        kw, value = item["instruction"], item["value"]
        if kw == "COMMENT":
            continue
        if kw == "FROM":
            m = re.fullmatch(r"(?:--platform=\S+\s+)?(\S+)(?:\s+AS\s+(\S+))?", value, re.I)
            assert m, f"unparsable FROM {value}"
            stages.append(Stage(image=next(parents), name=m.group(2)))
        elif not stages:
            assert kw == "ARG", f"{kw} before the first FROM"
            name, _, default = value.partition("=")
            global_args[name] = default
        else:
            stages[-1].instructions.append((kw, value))
    return Image(service, parser, global_args, stages)


def _pyproject(service: str) -> dict[str, Any]:
    return tomllib.loads((REPO / "services" / service / "pyproject.toml").read_text())


@pytest.fixture(params=SERVICES, scope="module")
def image(request: pytest.FixtureRequest) -> Image:
    return parse(request.param)


def test_every_service_package_gets_an_image() -> None:
    assert {"gateway", "identity", "billing", "scheduler", "agent"} <= set(SERVICES)
    for service in SERVICES:
        assert _pyproject(service)["project"]["name"] == f"qlp-{service}"


def test_is_multi_stage_with_named_stages(image: Image) -> None:
    assert image.parser.is_multistage
    names = [s.name for s in image.stages]
    assert "builder" in names and names[-1] == "runtime"
    copies = image.stages[-1].all("COPY")
    assert any("--from=builder" in c and "/app/.venv" in c for c in copies)


def test_base_images_are_pinned(image: Image) -> None:
    stage_names = {s.name for s in image.stages if s.name}
    for stage in image.stages:
        if stage.image in stage_names:
            continue
        assert "$" not in stage.image, f"unresolved base image {stage.image}"
        tag = stage.image.rsplit("/", 1)[-1]
        assert ":" in tag or "@sha256:" in stage.image, f"{stage.image} has no tag"
        assert not stage.image.endswith(":latest"), stage.image
    assert re.fullmatch(r"ghcr\.io/astral-sh/uv:\d+\.\d+\.\d+", image.global_args["UV_IMAGE"])
    assert re.fullmatch(r"python:3\.11(\.\d+)?-slim-\w+", image.global_args["PYTHON_IMAGE"])
    assert ":latest" not in DOCKERFILE.read_text()


def test_runs_as_numeric_non_root_user(image: Image) -> None:
    users = image.stages[-1].all("USER")
    assert users, "the runtime stage must set USER"
    m = re.fullmatch(r"(\d+)(?::(\d+))?", users[-1])
    assert m, f"USER {users[-1]} must be numeric (runAsNonRoot checks the uid)"
    assert int(m.group(1)) == 10001 and int(m.group(2) or m.group(1)) != 0
    # nothing after USER switches back to root
    runtime = image.stages[-1].instructions
    after = runtime[max(i for i, (kw, _) in enumerate(runtime) if kw == "USER") :]
    assert not [v for kw, v in after if kw == "USER" and v.split(":")[0] in {"0", "root"}]


def test_no_secrets_in_the_recipe_or_the_build_context(image: Image) -> None:
    for stage in image.stages:
        for kw, value in stage.instructions:
            if kw in {"ENV", "ARG", "LABEL"}:
                names = re.findall(r"(\w+)=", value) or [value.split()[0]]
                assert not [n for n in names if SECRET_WORDS.search(n)], f"{kw} {value}"
            if kw in {"COPY", "ADD"}:
                assert not re.search(r"\.env\b|\.pem\b|id_rsa|\.qlp\b|kubeconfig", value), value
            assert "--mount=type=secret" not in value or kw == "RUN"
    for name in image.parser.envs:
        assert not SECRET_WORDS.search(name), name
    ignored = IGNORE_FILE.read_text().split()
    # the local runtime's state (it holds the internal auth secret) and env files
    for entry in (".qlp", "**/.env", "**/*.pem"):
        assert entry in ignored, f"{entry} must be kept out of the build context"


def test_builds_the_service_from_the_workspace_lock(image: Image) -> None:
    builder = next(s for s in image.stages if s.name == "builder")
    assert "SERVICE" in builder.all("ARG")
    assert any("--from=uv" in c and "/uv" in c for c in builder.all("COPY"))
    syncs = [r for r in builder.all("RUN") if "uv sync" in r]
    assert syncs
    for run in syncs:
        for flag in ("--frozen", "--no-dev", "--no-editable", '"--package qlp-${SERVICE}"'):
            assert flag in run, (flag, run)
    assert any("UV_PROJECT_ENVIRONMENT=/app/.venv" in e for e in builder.all("ENV"))
    assert image.parser.envs["QLP_SERVICE"] == image.service


def test_runtime_is_read_only_friendly(image: Image) -> None:
    env = image.parser.envs
    assert env["PYTHONDONTWRITEBYTECODE"] == "1"
    assert env["HOME"] == env["TMPDIR"] == "/tmp"  # noqa: S108 (the emptyDir)
    runtime = image.stages[-1]
    assert "8000" in runtime.all("EXPOSE")
    assert not any("pip install" in r for r in runtime.all("RUN")), "install in the builder"


def _module_file(module: str, service: str | None = None) -> Path | None:
    """The source file of a module in the service's package or a workspace library
    (read from the tree, so a package not yet synced into the venv is checked too)."""
    roots = [REPO / "services" / service / "src"] if service else []
    roots += sorted(REPO.glob("libs/*/src"))
    rel = Path(*module.split("."))
    for root in roots:
        for candidate in (
            root / f"{rel}.py",
            root / rel / "__init__.py",
            root / rel / "__main__.py",
        ):
            if candidate.is_file():
                return candidate
    return None


def _module_exists(module: str) -> bool:
    return _module_file(module) is not None


def test_the_entry_points_exist_in_the_package(image: Image) -> None:
    """The image's ENTRYPOINT and the command its chart runs are in the installed package."""
    service = image.service
    entry = json.loads(image.stages[-1].all("ENTRYPOINT")[-1])
    assert entry[:2] == ["python", "-m"] and _module_exists(entry[2]), entry
    project = _pyproject(service)["project"]
    assert "qlp-kit" in project["dependencies"], "qlp_kit.serve comes from qlp-kit"
    values = yaml.safe_load((REPO / "charts" / service / "values.yaml").read_text())
    command = values["command"]
    if command[:2] == ["python", "-m"]:
        assert command[2] == "qlp_kit.serve"
        # `python -m qlp_kit.serve <service>`: the service registers its definition
        target = project["entry-points"]["qlp.services"][service]
    else:  # a console script of the package (the agent's `qlp-agent run`)
        (script,) = command[:1]
        target = project["scripts"][script]
    module, _, attr = target.partition(":")
    source = _module_file(module, service)
    assert source and f"services/{service}/src/" in str(source), f"{target}: no such module"
    assert re.search(rf"^(def |async def |){attr}\b", source.read_text(), re.M), target
    # the index hook's command ships with qlp-kit in every image
    if values["indexes"]["enabled"]:
        assert _module_exists("qlp_kit.indexes")


#: What WeasyPrint (the console's invoice PDFs) loads at run time on Debian bookworm.
WEASYPRINT_PACKAGES = ("libpango-1.0-0", "libpangoft2-1.0-0", "libharfbuzz-subset0")


def test_the_console_image_has_weasyprints_system_libraries(image: Image) -> None:
    """The console's runtime stage installs Pango (and a font) from Debian and proves
    WeasyPrint renders a PDF at build time; other images stay without them."""
    runtime = image.stages[-1]
    runs = runtime.all("RUN")
    installs = [r for r in runs if "apt-get install" in r]
    assert installs, "the runtime stage installs the service's system libraries"
    (install,) = installs
    case = re.search(r'case "\$\{SERVICE\}" in(.*?)esac', install, re.S)
    assert case, install
    branches = dict(re.findall(r'(\w+|\*)\)\s*packages="([^"]*)"', case.group(1)))
    assert set(WEASYPRINT_PACKAGES) <= set(branches["console"].split())
    assert any(p.startswith("fonts-") for p in branches["console"].split())
    assert branches["*"] == "", "only the services that need them get system libraries"
    assert "--no-install-recommends" in install and "rm -rf /var/lib/apt/lists" in install
    # installed as root, before the image switches to the service user
    kws = [kw for kw, _ in runtime.instructions]
    assert kws.index("RUN") < kws.index("USER")
    assert any("import weasyprint" in r and "write_pdf" in r for r in runs)
    # the console package depends on WeasyPrint (the import above needs it)
    if image.service == "console":
        deps = _pyproject("console")["project"]["dependencies"]
        assert any(d.startswith("weasyprint") for d in deps)
