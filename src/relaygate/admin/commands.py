"""`relaygate tenants ...` and `relaygate keys ...`: tenants and keys from the command line.

They work on the gateway's database directly (no running gateway needed), found the way `serve`
finds it: `--config`, `RELAYGATE_CONFIG`, `RELAYGATE_DATA_DIR`, `RELAYGATE_DATABASE_URL`. They
never create a database: one that does not exist yet (or is not at this version's schema) is
named, with how to point the command elsewhere, and the command exits with status 1. Nothing is
created implicitly either: a key for an unknown tenant or environment is refused unless asked
for (`--create-tenant`). A running gateway sees every change within `server.policy_refresh_s`.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import re
import sys
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from datetime import datetime
from typing import TYPE_CHECKING, Any

from relaygate.store.errors import DatabaseNotReady, StoreRefusal

if TYPE_CHECKING:  # the store (SQLAlchemy, Alembic) is imported when a command runs
    from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

    from relaygate.config.schema import GatewayConfig
    from relaygate.store.tables import ApiKey

NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9._\-]{0,63}")
ELSEWHERE = (
    "  Run the command with the gateway's configuration: the same --config (or RELAYGATE_CONFIG),\n"
    "  RELAYGATE_DATA_DIR or RELAYGATE_DATABASE_URL as `relaygate serve`. `relaygate serve`\n"
    "  creates and migrates the database on its first start."
)


@dataclass(frozen=True, slots=True)
class Database:
    """What a command works on: the gateway's database, and its configuration."""

    sessions: async_sessionmaker[AsyncSession]
    where: str  # printable: a file, or a URL without its password
    config: GatewayConfig


Action = Callable[[Database], Awaitable[None]]


def _name(kind: str) -> Callable[[str], str]:
    def check(value: str) -> str:
        if not NAME.fullmatch(value):
            raise argparse.ArgumentTypeError(
                f"{kind} {value!r}: 1-64 letters, digits, '.', '_' or '-', starting with a letter"
                " or digit"
            )
        return value

    return check


def _on_database(args: argparse.Namespace, action: Action) -> int:
    from relaygate.cli import load_or_explain

    config = load_or_explain(args.config)
    if config is None:
        return 1
    try:
        asyncio.run(_run(config, action))
    except DatabaseNotReady as exc:
        print(f"error: {exc}\n{ELSEWHERE}", file=sys.stderr)
        return 1
    except StoreRefusal as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 1
    return 0


async def _run(config: GatewayConfig, action: Action) -> None:
    from relaygate.store.database import (
        create_engine,
        require_current_schema,
        sessionmaker,
        shown_location,
    )

    url = config.server.resolved_database_url()
    await require_current_schema(url)
    engine = create_engine(url)
    try:
        await action(Database(sessionmaker(engine), shown_location(url), config))
    finally:
        await engine.dispose()


def _when(moment: datetime | None) -> str:
    return moment.strftime("%Y-%m-%d %H:%M:%S") if moment is not None else "-"


def _tenants_create(args: argparse.Namespace) -> int:
    async def action(db: Database) -> None:
        from relaygate.store.tenants import TenantStore

        tenant = await TenantStore(db.sessions).create_tenant(
            args.tenant, args.name, args.environment or ()
        )
        print(
            f"tenant {tenant.id!r} created with environments {', '.join(tenant.environments)}"
            f" in {db.where}"
        )

    return _on_database(args, action)


def _tenants_add_environment(args: argparse.Namespace) -> int:
    async def action(db: Database) -> None:
        from relaygate.store.tenants import TenantStore

        await TenantStore(db.sessions).add_environment(args.tenant, args.environment)
        print(f"environment {args.environment!r} added to tenant {args.tenant!r} in {db.where}")

    return _on_database(args, action)


def _tenants_list(args: argparse.Namespace) -> int:
    async def action(db: Database) -> None:
        from relaygate.store.tenants import TenantStore

        tenants = await TenantStore(db.sessions).tenants()
        if args.json:
            rows = [
                {
                    "id": t.id,
                    "name": t.name,
                    "created_at": t.created_at.isoformat(),
                    "environments": list(t.environments),
                }
                for t in tenants
            ]
            print(json.dumps(rows, indent=2))
            return
        print(f"{'TENANT':<24} {'CREATED':<19}  ENVIRONMENTS")
        for t in tenants:
            print(f"{t.id:<24} {_when(t.created_at):<19}  {', '.join(t.environments)}")

    return _on_database(args, action)


def _keys_create(args: argparse.Namespace) -> int:
    async def action(db: Database) -> None:
        from relaygate.store.keys import KeyStore
        from relaygate.store.tenants import TenantStore, environments_with_defaults

        tenants = TenantStore(db.sessions)
        tenant = args.tenant or db.config.server.default_tenant
        if args.create_tenant:
            await tenants.create_tenant(tenant, None, [args.environment])
            print(
                f"tenant {tenant!r} created with environments"
                f" {', '.join(environments_with_defaults([args.environment]))}"
            )
        else:
            await tenants.require_environment(tenant, args.environment)
        key, key_id = await KeyStore(db.sessions).create_key(
            tenant, environment=args.environment, name=args.name
        )
        print(
            f"key id {key_id} for tenant {tenant!r} ({args.environment}) in {db.where}; shown once:"
        )
        print(key)

    return _on_database(args, action)


def _key_row(row: ApiKey) -> dict[str, Any]:
    return {
        "id": row.id,
        "display_prefix": row.display_prefix,
        "tenant_id": row.tenant_id,
        "environment": row.environment,
        "kind": row.kind,
        "name": row.name,
        "created_at": row.created_at.isoformat(),
        "expires_at": row.expires_at.isoformat() if row.expires_at else None,
        "revoked_at": row.revoked_at.isoformat() if row.revoked_at else None,
    }


def _keys_list(args: argparse.Namespace) -> int:
    async def action(db: Database) -> None:
        from relaygate.store.keys import KeyStore
        from relaygate.store.tenants import TenantStore

        if args.tenant is not None:
            await TenantStore(db.sessions).require_tenant(args.tenant)
        rows = await KeyStore(db.sessions).keys(args.tenant)
        if args.json:
            print(json.dumps([_key_row(r) for r in rows], indent=2))
            return
        print(
            f"{'ID':<10} {'PREFIX':<20} {'TENANT':<20} {'ENVIRONMENT':<12} {'KIND':<6}"
            f" {'CREATED':<19}  {'REVOKED':<19}  NAME"
        )
        for r in rows:
            print(
                f"{r.id:<10} {r.display_prefix:<20} {r.tenant_id or '(operator)':<20}"
                f" {r.environment:<12} {r.kind:<6} {_when(r.created_at):<19}"
                f"  {_when(r.revoked_at):<19}  {r.name or ''}".rstrip()
            )

    return _on_database(args, action)


def _keys_revoke(args: argparse.Namespace) -> int:
    async def action(db: Database) -> None:
        from relaygate.store.keys import KeyStore

        row = await KeyStore(db.sessions).revoke(args.key_id)
        owner = f"tenant {row.tenant_id!r}" if row.tenant_id else "the operator"
        print(
            f"key {row.id} ({row.display_prefix}, {owner}) revoked at {_when(row.revoked_at)}"
            f" in {db.where}; running gateways refuse it within their policy refresh interval"
        )

    return _on_database(args, action)


def _keys_master(_args: argparse.Namespace) -> int:
    from relaygate.vault.master_key import new_master_key

    print(new_master_key())
    return 0


def _config_arg(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--config", help="the gateway's configuration file (default: $RELAYGATE_CONFIG)"
    )


def add_commands(sub: Any) -> None:
    """Register `tenants` and `keys` on the top-level subparsers."""
    tenants = sub.add_parser("tenants", help="manage tenants in the gateway's database")
    tenant_commands = tenants.add_subparsers(dest="tenants_command", required=True)
    create = tenant_commands.add_parser(
        "create", help="create a tenant with its production environment"
    )
    create.add_argument("tenant", type=_name("tenant"), help="tenant id")
    create.add_argument("--name", help="display name (default: the id)")
    create.add_argument(
        "--environment",
        action="append",
        type=_name("environment"),
        help="another environment besides production (repeat for several)",
    )
    _config_arg(create)
    create.set_defaults(func=_tenants_create)
    add_env = tenant_commands.add_parser(
        "add-environment", help="add an environment to an existing tenant"
    )
    add_env.add_argument("tenant", type=_name("tenant"))
    add_env.add_argument("environment", type=_name("environment"))
    _config_arg(add_env)
    add_env.set_defaults(func=_tenants_add_environment)
    listing = tenant_commands.add_parser("list", help="list tenants and their environments")
    listing.add_argument("--json", action="store_true")
    _config_arg(listing)
    listing.set_defaults(func=_tenants_list)

    keys = sub.add_parser("keys", help="manage API keys in the gateway's database")
    key_commands = keys.add_subparsers(dest="keys_command", required=True)
    key_create = key_commands.add_parser(
        "create", help="create a tenant API key (shown once) for an existing tenant"
    )
    key_create.add_argument(
        "--tenant", type=_name("tenant"), help="tenant id (default: server.default_tenant)"
    )
    key_create.add_argument("--environment", type=_name("environment"), default="production")
    key_create.add_argument("--name", help="a label shown in listings")
    key_create.add_argument(
        "--create-tenant",
        action="store_true",
        help="create the tenant first (with production and --environment); refused if it exists",
    )
    _config_arg(key_create)
    key_create.set_defaults(func=_keys_create)
    key_list = key_commands.add_parser(
        "list", help="list keys: id, prefix, tenant, environment, dates (never the key)"
    )
    key_list.add_argument("--tenant", type=_name("tenant"), help="only this tenant's keys")
    key_list.add_argument("--json", action="store_true")
    _config_arg(key_list)
    key_list.set_defaults(func=_keys_list)
    revoke = key_commands.add_parser("revoke", help="revoke a key by its id (see `keys list`)")
    revoke.add_argument("key_id")
    _config_arg(revoke)
    revoke.set_defaults(func=_keys_revoke)
    master = key_commands.add_parser(
        "master", help="print a fresh master key for RELAYGATE_MASTER_KEY (stored nowhere)"
    )
    master.set_defaults(func=_keys_master)
