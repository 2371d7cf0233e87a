"""Process entry: ``python -m qlp_kit.serve <service>``.

``<service>`` is the name of an entry point in the ``qlp.services`` group (every
service registers its definition there) or ``package.module:attribute``.
"""

from __future__ import annotations

import argparse
import importlib
import os
from importlib.metadata import entry_points

import uvicorn

from qlp_kit.app import ServiceDefinition, create_app
from qlp_kit.settings import load_settings

GROUP = "qlp.services"


def installed_services() -> dict[str, str]:
    return {ep.name: ep.value for ep in entry_points(group=GROUP)}


def resolve(target: str) -> ServiceDefinition:
    if ":" not in target:
        known = installed_services()
        if target not in known:
            raise SystemExit(f"unknown service {target!r}; installed: {sorted(known)}")
        target = known[target]
    module, _, attr = target.partition(":")
    definition = getattr(importlib.import_module(module), attr)
    if not isinstance(definition, ServiceDefinition):
        raise SystemExit(f"{target} is not a ServiceDefinition")
    return definition


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="python -m qlp_kit.serve")
    parser.add_argument(
        "service",
        nargs="?",
        default=os.environ.get("QLP_SERVICE"),
        help="entry-point name or module:attribute (default: $QLP_SERVICE, set in images)",
    )
    parser.add_argument("--host")
    parser.add_argument("--port", type=int)
    args = parser.parse_args(argv)
    if not args.service:
        parser.error("name the service to run (or set QLP_SERVICE)")
    definition = resolve(args.service)
    overrides: dict[str, object] = {"service_name": definition.name}
    settings = load_settings(definition.settings_cls, **overrides)
    host = args.host or settings.http_host
    port = args.port or settings.http_port
    settings = settings.model_copy(update={"http_host": host, "http_port": port})
    app = create_app(definition, settings)
    uvicorn.run(
        app, host=host, port=port, log_config=None, access_log=False, timeout_graceful_shutdown=10
    )


if __name__ == "__main__":
    main()
