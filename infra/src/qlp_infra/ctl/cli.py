"""``qlpctl``: operate a QLP platform, local (``make up``) or a Helm release on Kubernetes.

    qlpctl status                                  services, readiness, consumer lag, DLQ depth
    qlpctl providers drain <provider_id> --org <org_id>
    qlpctl dlq list <group> | dlq replay <group> [--limit N]
    qlpctl ledger check
    qlpctl keys rotate [--scheduled]
    qlpctl tenants export <org_id> [--out FILE]
    qlpctl admins grant <email> | admins revoke <email> | admins list

``--cluster`` (with ``--namespace``, ``--release``, ``--kubeconfig``, ``--context``)
targets a cluster; without it the local platform. ``--output json`` prints one JSON
document for scripts. Exit status 1 when the command failed or found a problem
(a service not ready, a ledger problem).
"""

from __future__ import annotations

import json
import sys
from dataclasses import asdict
from enum import StrEnum
from pathlib import Path
from typing import Annotated, Any
from urllib.parse import quote

import typer
from rich.console import Console
from rich.table import Table

from qlp_infra.ctl.target import (
    PLATFORM_ORG,
    ClusterTarget,
    CtlError,
    LocalTarget,
    Target,
    operator_principal,
)


class Output(StrEnum):
    table = "table"
    json = "json"


app = typer.Typer(help=__doc__, no_args_is_help=True, add_completion=False)
providers_app = typer.Typer(help="GPU providers", no_args_is_help=True)
dlq_app = typer.Typer(help="dead-letter topics (qlp.dlq.<group>)", no_args_is_help=True)
ledger_app = typer.Typer(help="billing's double-entry ledger", no_args_is_help=True)
keys_app = typer.Typer(help="identity's token signing keys", no_args_is_help=True)
tenants_app = typer.Typer(help="one organisation's data", no_args_is_help=True)
admins_app = typer.Typer(
    help="platform admins (the console's admin views, billing's admin API)", no_args_is_help=True
)
app.add_typer(providers_app, name="providers")
app.add_typer(dlq_app, name="dlq")
app.add_typer(ledger_app, name="ledger")
app.add_typer(keys_app, name="keys")
app.add_typer(tenants_app, name="tenants")
app.add_typer(admins_app, name="admins")

console = Console()
err = Console(stderr=True)


class Ctl:
    def __init__(self, target: Target, output: Output) -> None:
        self.target = target
        self.output = output

    def emit(self, data: Any, render: Any = None) -> None:
        if self.output is Output.json or render is None:
            sys.stdout.write(json.dumps(data, indent=2, default=str) + "\n")
        else:
            render(data)


def _ctl(ctx: typer.Context) -> Ctl:
    obj: Ctl = ctx.obj
    return obj


#: Tests replace this to hand in a target with a fake Kubernetes client.
TARGET_FACTORY: Any = None


@app.callback()
def main(
    ctx: typer.Context,
    cluster: Annotated[bool, typer.Option("--cluster", help="the kubeconfig's cluster")] = False,
    namespace: Annotated[str, typer.Option(help="namespace of the release")] = "qlp",
    release: Annotated[str, typer.Option(help="Helm release name")] = "qlp",
    kubeconfig: Annotated[str | None, typer.Option(help="kubeconfig file")] = None,
    context: Annotated[str | None, typer.Option(help="kubeconfig context")] = None,
    state_dir: Annotated[
        Path | None, typer.Option(help="local runtime state (default .qlp)")
    ] = None,
    output: Annotated[Output, typer.Option("--output", "-o")] = Output.table,
) -> None:
    target: Target
    if TARGET_FACTORY is not None:
        target = TARGET_FACTORY(cluster=cluster, namespace=namespace, release=release)
    elif cluster:
        target = ClusterTarget(namespace, release, kubeconfig, context)
    else:
        target = LocalTarget(state_dir)
    ctx.obj = Ctl(target, output)


def _fail(message: str) -> None:
    err.print(f"[red]qlpctl:[/red] {message}")
    raise typer.Exit(1)


def _checked(resp: Any, what: str) -> Any:
    if not resp.ok():
        detail = resp.body.get("detail") if isinstance(resp.body, dict) else resp.body
        _fail(f"{what}: HTTP {resp.status}: {detail}")
    return resp.body


# -------------------------------------------------------------------- status --


def _consumer_groups(target: Target, services: list[str]) -> dict[str, dict[str, list[str]]]:
    """service -> {group: [topics]}, from each service's AsyncAPI document."""
    out: dict[str, dict[str, list[str]]] = {}
    for service in services:
        try:
            resp = target.request(service, "GET", "/asyncapi.json")
        except CtlError:
            continue
        if not resp.ok() or not isinstance(resp.body, dict):
            continue
        groups: dict[str, list[str]] = {}
        for key, channel in (resp.body.get("channels") or {}).items():
            messages = channel.get("messages") or {}
            if any(m.startswith("Subscribe") for m in messages):
                groups.setdefault(key, []).append(channel.get("address", ""))
        if groups:
            out[service] = groups
    return out


def collect_status(target: Target) -> dict[str, Any]:
    services = target.services()
    rows = []
    for name, info in sorted(services.items()):
        ready: Any = None
        checks: Any = None
        if info.ready and name != "agent":
            try:
                resp = target.request(name, "GET", "/readyz")
                ready = resp.status == 200
                checks = resp.body.get("checks") if isinstance(resp.body, dict) else resp.body
            except CtlError as exc:
                ready, checks = False, str(exc)
        rows.append({**asdict(info), "readyz": ready, "checks": checks})
    # a service that is not ready still says which groups it runs (and their lag matters)
    groups = _consumer_groups(target, [r["name"] for r in rows if r["readyz"] is not None])
    lag: list[dict[str, Any]] = []
    dlq: list[dict[str, Any]] = []
    problems = []
    kafka_service = next((s for s in ("gateway", *groups) if s in groups or s in services), None)
    if kafka_service:
        for service, by_group in groups.items():
            try:
                lag += target.probe(
                    "consumer_lag",
                    service=service,
                    groups=sorted(by_group),
                    topics_of=by_group,
                )
            except CtlError as exc:
                problems.append(f"consumer lag of {service}: {exc}")
        try:
            dlq = target.probe("dlq_depth", service=kafka_service)
        except CtlError as exc:
            problems.append(f"DLQ depth: {exc}")
    healthy = all(r["ready"] >= max(r["desired"], 1) and r["readyz"] is not False for r in rows)
    return {
        "target": target.where,
        "healthy": healthy and not problems,
        "services": rows,
        "consumer_lag": lag,
        "dlq": dlq,
        "problems": problems,
    }


def _render_status(data: dict[str, Any]) -> None:
    t = Table(title=f"QLP services ({data['target']})")
    for col in ("service", "pods ready", "readyz", "checks", "where"):
        t.add_column(col)
    for r in data["services"]:
        ok = r["readyz"]
        mark = "[green]ready[/green]" if ok else ("-" if ok is None else "[red]not ready[/red]")
        checks = r["checks"]
        if isinstance(checks, dict):
            checks = " ".join(f"{k}={'ok' if v else 'FAIL'}" for k, v in checks.items())
        t.add_row(r["name"], f"{r['ready']}/{r['desired']}", mark, str(checks or ""), r["detail"])
    console.print(t)
    lag = Table(title="Consumer lag")
    for col in ("group", "topic", "lag"):
        lag.add_column(col)
    for r in data["consumer_lag"]:
        lag.add_row(r["group"], r["topic"], str(r["lag"]))
    console.print(lag)
    dlq = Table(title="Dead-letter topics")
    for col in ("group", "records", "not replayed"):
        dlq.add_column(col)
    for r in data["dlq"]:
        dlq.add_row(r["group"], str(r["records"]), str(r["not_replayed"]))
    if not data["dlq"]:
        dlq.add_row("(none)", "0", "0")
    console.print(dlq)
    for p in data["problems"]:
        err.print(f"[yellow]{p}[/yellow]")


@app.command()
def status(ctx: typer.Context) -> None:
    """Services (pods, /readyz), consumer lag per group and topic, DLQ depth."""
    ctl = _ctl(ctx)
    try:
        data = collect_status(ctl.target)
    except CtlError as exc:
        _fail(str(exc))
    ctl.emit(data, _render_status)
    if not data["healthy"]:
        raise typer.Exit(1)


# ----------------------------------------------------------------- providers --


@providers_app.command("drain")
def providers_drain(
    ctx: typer.Context,
    provider_id: str,
    org: Annotated[str, typer.Option("--org", help="the provider's organisation")],
) -> None:
    """Withdraw a provider's offers; running jobs finish (scheduler POST .../drain)."""
    ctl = _ctl(ctx)
    principal = operator_principal(org, scopes=["provider:agent"])
    try:
        resp = ctl.target.request(
            "scheduler", "POST", f"/v1/providers/{provider_id}/drain", principal=principal
        )
    except CtlError as exc:
        _fail(str(exc))
    body = _checked(resp, f"drain {provider_id}")
    ctl.emit(body, lambda b: console.print(f"provider {provider_id}: {b.get('status')}"))


# ----------------------------------------------------------------------- dlq --


def _owner(group: str) -> str:
    """The service of a consumer group (groups are named <service>.<purpose>)."""
    return group.split(".", 1)[0]


@dlq_app.command("list")
def dlq_list(
    ctx: typer.Context,
    group: str,
    limit: Annotated[int, typer.Option(help="at most this many")] = 1000,
) -> None:
    """What is in qlp.dlq.<group>, and why (nothing is moved)."""
    ctl = _ctl(ctx)
    try:
        rows = ctl.target.probe("dlq_list", service=_owner(group), group=group, limit=limit)
    except CtlError as exc:
        _fail(str(exc))

    def render(items: list[dict[str, Any]]) -> None:
        t = Table(title=f"qlp.dlq.{group}")
        for col in ("offset", "from", "type", "id", "reason"):
            t.add_column(col)
        for d in items:
            t.add_row(
                str(d["offset"]), d["original_topic"], d["event_type"], d["event_id"], d["reason"]
            )
        console.print(t)

    ctl.emit(rows, render)


@dlq_app.command("replay")
def dlq_replay(
    ctx: typer.Context,
    group: str,
    limit: Annotated[int | None, typer.Option(help="replay at most this many")] = None,
) -> None:
    """Republish dead letters to their original topics (consumers deduplicate)."""
    ctl = _ctl(ctx)
    try:
        out = ctl.target.probe("dlq_replay", service=_owner(group), group=group, limit=limit)
    except CtlError as exc:
        _fail(str(exc))
    ctl.emit(out, lambda o: console.print(f"replayed {o['replayed']} message(s) of {group}"))


# -------------------------------------------------------------------- ledger --


@ledger_app.command("check")
def ledger_check(ctx: typer.Context) -> None:
    """Verify the whole ledger (billing GET /v1/billing/admin/ledger/check); exit 1 on a problem."""
    ctl = _ctl(ctx)
    try:
        resp = ctl.target.request("billing", "GET", "/v1/billing/admin/ledger/check")
    except CtlError as exc:
        _fail(str(exc))
    report = _checked(resp, "ledger check")

    def render(r: dict[str, Any]) -> None:
        ok = r.get("ok")
        console.print("[green]ledger ok[/green]" if ok else "[red]ledger has problems[/red]")
        console.print_json(json.dumps(r, default=str))

    ctl.emit(report, render)
    if not report.get("ok"):
        raise typer.Exit(1)


# ---------------------------------------------------------------------- keys --


@keys_app.command("rotate")
def keys_rotate(
    ctx: typer.Context,
    scheduled: Annotated[
        bool, typer.Option(help="pre-publish the new key first, as the schedule does")
    ] = False,
) -> None:
    """Rotate identity's signing key (POST /internal/v1/signing-keys/rotate)."""
    ctl = _ctl(ctx)
    try:
        resp = ctl.target.request(
            "identity",
            "POST",
            "/internal/v1/signing-keys/rotate",
            params={"immediate": "false" if scheduled else "true"},
        )
    except CtlError as exc:
        _fail(str(exc))
    body = _checked(resp, "rotate")
    ctl.emit(body, lambda b: console.print(f"new signing key {b['kid']}"))


# ------------------------------------------------------------------- tenants --


@tenants_app.command("export")
def tenants_export(
    ctx: typer.Context,
    org_id: str,
    out: Annotated[Path | None, typer.Option(help="write the export to this file")] = None,
) -> None:
    """Every service's documents of one organisation (GDPR access requests)."""
    ctl = _ctl(ctx)
    export: dict[str, Any] = {"org_id": org_id, "databases": {}}
    try:
        services = [s for s, i in ctl.target.services().items() if i.ready and s != "agent"]
        for service in sorted(services):
            found = ctl.target.probe(
                "tenant_export", service=service, org_id=org_id, databases=[f"qlp_{service}"]
            )
            export["databases"].update(found)
    except CtlError as exc:
        _fail(str(exc))
    if out is not None:
        out.write_text(json.dumps(export, indent=2, default=str))
        out.chmod(0o600)

    def render(e: dict[str, Any]) -> None:
        t = Table(title=f"data of {org_id}" + (f" (written to {out})" if out else ""))
        for col in ("database", "collection", "documents"):
            t.add_column(col)
        for db, colls in e["databases"].items():
            for coll, docs in colls.items():
                t.add_row(db, coll, str(len(docs)))
        console.print(t)

    ctl.emit(export if out is None else {"written": str(out), "org_id": org_id}, render)
    if not export["databases"]:
        err.print(f"no documents of {org_id}")


# -------------------------------------------------------------------- admins --


def _admin_change(ctx: typer.Context, email: str, method: str) -> None:
    ctl = _ctl(ctx)
    try:
        resp = ctl.target.request(
            "identity", method, f"/internal/v1/platform-admins/{quote(email.strip(), safe='@')}"
        )
    except CtlError as exc:
        _fail(str(exc))
    body = _checked(resp, f"{'grant' if method == 'PUT' else 'revoke'} {email}")

    def render(b: dict[str, Any]) -> None:
        state = "is a platform admin" if b["platform_admin"] else "is no platform admin"
        console.print(f"{b['email']} ({b['id']}) {state}" + ("" if b["changed"] else " already"))
        if b["changed"] and b["platform_admin"]:
            console.print("they get the role with their next sign-in (sign out and in again)")
        elif b["changed"]:
            console.print("access tokens already issued keep the role until they expire (15 min)")

    ctl.emit(body, render)


@admins_app.command("grant")
def admins_grant(ctx: typer.Context, email: str) -> None:
    """Make the user with this e-mail a platform admin (identity; idempotent)."""
    _admin_change(ctx, email, "PUT")


@admins_app.command("revoke")
def admins_revoke(ctx: typer.Context, email: str) -> None:
    """Take the platform admin role away from the user with this e-mail."""
    _admin_change(ctx, email, "DELETE")


@admins_app.command("list")
def admins_list(ctx: typer.Context) -> None:
    """The platform admins."""
    ctl = _ctl(ctx)
    try:
        resp = ctl.target.request("identity", "GET", "/internal/v1/platform-admins")
    except CtlError as exc:
        _fail(str(exc))
    rows = _checked(resp, "list platform admins")

    def render(items: list[dict[str, Any]]) -> None:
        t = Table(title="Platform admins")
        for col in ("email", "user", "since"):
            t.add_column(col)
        for u in items:
            t.add_row(u["email"], u["id"], str(u.get("admin_since") or ""))
        if not items:
            t.add_row("(none)", "", "")
        console.print(t)

    ctl.emit(rows, render)


def run() -> None:
    app()


__all__ = ["PLATFORM_ORG", "app", "collect_status", "run"]


if __name__ == "__main__":
    run()
