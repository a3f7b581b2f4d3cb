"""The `relaygate` command: serve, worker, check-config, tenants, keys, vault, kek, audit,
version."""

from __future__ import annotations

import argparse
import os
import sys
from collections.abc import Sequence

from relaygate import __version__
from relaygate.admin import commands as admin_commands
from relaygate.audit import commands as audit_commands
from relaygate.config.loader import ConfigError, load_config
from relaygate.config.schema import GatewayConfig
from relaygate.config.secrets import provider_secrets
from relaygate.vault import commands as vault_commands


def load_or_explain(path: str | None) -> GatewayConfig | None:
    """The configuration, or None after printing why it is invalid."""
    try:
        return load_config(path or os.environ.get("RELAYGATE_CONFIG") or None)
    except ConfigError as exc:
        print(exc.explain(), file=sys.stderr)
        return None


def _cmd_version(_args: argparse.Namespace) -> int:
    print(f"relaygate {__version__}")
    return 0


def _cmd_check_config(args: argparse.Namespace) -> int:
    try:
        config = load_config(args.path)
        provider_secrets(config, os.environ)
    except ConfigError as exc:
        print(exc.explain(), file=sys.stderr)
        return 1
    models = sum(len(p.models) for p in config.providers)
    print(
        f"{args.path}: ok ({len(config.providers)} providers, {models} models,"
        f" {len(config.routes)} routes)"
    )
    return 0


def _cmd_serve(args: argparse.Namespace) -> int:
    from relaygate.server.serve import serve

    config = load_or_explain(args.config)
    if config is None:
        return 1
    overrides = {
        k: v
        for k, v in (("host", args.host), ("port", args.port), ("workers", args.workers))
        if v is not None
    }
    if overrides:
        config = config.model_copy(update={"server": config.server.model_copy(update=overrides)})
    return serve(config, config_path=args.config or os.environ.get("RELAYGATE_CONFIG"))


def _cmd_worker(args: argparse.Namespace) -> int:
    from relaygate.server.worker import work

    config = load_or_explain(args.config)
    if config is None:
        return 1
    return work(config)


def build_parser() -> argparse.ArgumentParser:
    """The argument parser (exposed for tests and docs)."""
    parser = argparse.ArgumentParser(prog="relaygate", description=__doc__)
    sub = parser.add_subparsers(dest="command", required=True)
    serve = sub.add_parser("serve", help="start the gateway")
    serve.add_argument(
        "--config",
        help="YAML configuration file (default: $RELAYGATE_CONFIG or the embedded simulator setup)",
    )
    serve.add_argument("--host")
    serve.add_argument("--port", type=int)
    serve.add_argument("--workers", type=int)
    serve.set_defaults(func=_cmd_serve)
    worker = sub.add_parser("worker", help="run background jobs from the shared queue")
    worker.add_argument("--config", help="YAML configuration file (default: $RELAYGATE_CONFIG)")
    worker.set_defaults(func=_cmd_worker)
    check = sub.add_parser("check-config", help="validate a configuration file")
    check.add_argument("path")
    check.set_defaults(func=_cmd_check_config)
    admin_commands.add_commands(sub)
    vault_commands.add_commands(sub)
    audit_commands.add_commands(sub)
    version = sub.add_parser("version", help="print the version")
    version.set_defaults(func=_cmd_version)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of the console script."""
    args = build_parser().parse_args(argv)
    code: int = args.func(args)
    return code


if __name__ == "__main__":
    sys.exit(main())
