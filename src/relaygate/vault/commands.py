"""`relaygate vault ...` and `relaygate kek rotate`: the vault API from the command line.

Secret values are read from standard input (or from an environment variable with
`--value-from-env`), never from arguments, and never printed.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
from typing import Any

from relaygate.auth.signing_secrets import new_secret_text
from relaygate.vault.client import VaultClient, VaultClientError


def _value(args: argparse.Namespace) -> str:
    if args.value_from_env:
        value = os.environ.get(args.value_from_env, "")
        if not value:
            raise VaultClientError(f"environment variable {args.value_from_env} is empty")
        return value
    if sys.stdin.isatty():
        print("secret value (input hidden is not supported; paste and press Ctrl-D):", end="")
    value = sys.stdin.read().rstrip("\r\n")
    if not value:
        raise VaultClientError("no value on standard input")
    return value


def _summary(secret: dict[str, Any]) -> str:
    owner = f"{secret['tenant_id']}/{secret['environment']}" if secret["tenant_id"] else "operator"
    grants = ", ".join(f"{g['tenant_id']}/{g['environment']}" for g in secret["grants"])
    line = (
        f"{secret['id']}  {secret['name']:<24} owner={owner:<24} v{secret['current_version']}"
        f"  rotation={secret['rotation_status']} (due {secret['rotation_due_at']})"
    )
    return line + (f"  grants: {grants}" if grants else "")


def _run(args: argparse.Namespace) -> int:
    try:
        client = VaultClient.from_env(os.environ)
        result = args.action(client, args)
    except VaultClientError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 1
    if args.json:
        print(json.dumps(result, indent=2))
    elif isinstance(result, dict) and result.get("object") == "vault.secret":
        print(_summary(result))
    elif isinstance(result, dict) and result.get("object") == "list":
        for item in result["data"]:
            print(_summary(item))
    elif result is not None:
        print(result if isinstance(result, str) else json.dumps(result, indent=2))
    return 0


def _put(client: VaultClient, args: argparse.Namespace) -> Any:
    body: dict[str, Any] = {"name": args.name, "value": _value(args)}
    if args.tenant:
        body.update(tenant_id=args.tenant, environment=args.environment)
    for field in ("description", "rotation_days", "grace_s"):
        if getattr(args, field) is not None:
            body[field] = getattr(args, field)
    return client.call("POST", "/secrets", body)


def _list(client: VaultClient, args: argparse.Namespace) -> Any:
    return client.call("GET", "/secrets" + (f"?tenant_id={args.tenant}" if args.tenant else ""))


def _show(client: VaultClient, args: argparse.Namespace) -> Any:
    secret = client.call("GET", f"/secrets/{args.secret_id}")
    return secret if args.json else json.dumps(secret, indent=2)


def _rotate(client: VaultClient, args: argparse.Namespace) -> Any:
    body: dict[str, Any] = {"value": _value(args)}
    if args.grace_s is not None:
        body["grace_s"] = args.grace_s
    return client.call("POST", f"/secrets/{args.secret_id}/rotate", body)


def _grant(client: VaultClient, args: argparse.Namespace) -> Any:
    body = {"tenant_id": args.tenant, "environment": args.environment}
    return client.call("POST", f"/secrets/{args.secret_id}/grants", body)


def _revoke(client: VaultClient, args: argparse.Namespace) -> Any:
    path = f"/secrets/{args.secret_id}/grants/{args.tenant}/{args.environment}"
    return client.call("DELETE", path)


def _signing_secret(client: VaultClient, args: argparse.Namespace) -> Any:
    issued = client.signing_secret(args.key, args.overlap_s)
    if args.json:
        return issued
    whose = f"admin key {issued['key_id']}" if args.key else "this admin key"
    until = issued["previous_valid_until"]
    previous = (
        f"the previous secret keeps working until {until}"
        if until
        else "no previous secret keeps working"
    )
    return (
        f"new vault signing secret for {whose} ({previous}); shown once, use it as"
        f" RELAYGATE_ADMIN_SIGNING_SECRET:\n{issued['signing_secret']}"
    )


def _root_secret(_args: argparse.Namespace) -> int:
    print(new_secret_text())
    return 0


def _kek_rotate(client: VaultClient, _args: argparse.Namespace) -> Any:
    result = client.call("POST", "/kek/rotate")
    return (
        f"key-encryption key {result['kek_id']} now at version {result['version']};"
        f" {result['rewrapped']} data keys rewrapped; versions below {result['retired_below']}"
        " retired"
    )


def _value_args(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--value-from-env", metavar="VAR", help="read the value from this variable, not stdin"
    )


def add_commands(sub: Any) -> None:
    """Register `vault` and `kek` on the top-level subparsers."""
    vault = sub.add_parser(
        "vault",
        help="provider credentials in the vault (uses RELAYGATE_URL, RELAYGATE_ADMIN_KEY,"
        " RELAYGATE_ADMIN_SIGNING_SECRET)",
    ).add_subparsers(dest="vault_command", required=True)

    def command(name: str, action: Any, help_text: str) -> argparse.ArgumentParser:
        parser: argparse.ArgumentParser = vault.add_parser(name, help=help_text)
        parser.add_argument("--json", action="store_true", help="print the API's JSON")
        parser.set_defaults(func=_run, action=action)
        return parser

    put = command("put", _put, "store a secret (value from stdin)")
    put.add_argument("name")
    put.add_argument("--tenant", help="owner tenant (omit: an operator secret, shared by grants)")
    put.add_argument("--environment", default="production")
    put.add_argument("--description")
    put.add_argument("--rotation-days", type=int, dest="rotation_days")
    put.add_argument("--grace-s", type=int, dest="grace_s")
    _value_args(put)
    listing = command("list", _list, "list secrets (metadata only)")
    listing.add_argument("--tenant")
    show = command("show-metadata", _show, "a secret's versions, rotation state and grants")
    show.add_argument("secret_id")
    rotate = command("rotate", _rotate, "store a new value; the old one is retired after grace")
    rotate.add_argument("secret_id")
    rotate.add_argument("--grace-s", type=int, dest="grace_s")
    _value_args(rotate)
    grant = command("grant", _grant, "grant an operator secret to a tenant's environment")
    grant.add_argument("secret_id")
    grant.add_argument("--tenant", required=True)
    grant.add_argument("--environment", default="*", help="an environment, or '*' for all")
    revoke = command("revoke", _revoke, "revoke a grant")
    revoke.add_argument("secret_id")
    revoke.add_argument("--tenant", required=True)
    revoke.add_argument("--environment", default="*")
    issue = command(
        "signing-secret",
        _signing_secret,
        "a new vault signing secret for this admin key (or --key another one); signed with the"
        " current secret",
    )
    issue.add_argument("--key", help="the admin key id to issue it for (default: this key)")
    issue.add_argument(
        "--overlap-s",
        type=int,
        dest="overlap_s",
        help="seconds the previous secret keeps working (default: 3600 for this key, 0 for --key)",
    )
    root = vault.add_parser(
        "root-secret",
        help="print a fresh secret for RELAYGATE_ADMIN_SIGNING_SECRET (the operator's root; stored"
        " nowhere)",
    )
    root.set_defaults(func=_root_secret)
    kek = sub.add_parser("kek", help="the vault's key-encryption key").add_subparsers(
        dest="kek_command", required=True
    )
    kek_rotate = kek.add_parser("rotate", help="new KEK version, rewrap all data keys, retire old")
    kek_rotate.add_argument("--json", action="store_true")
    kek_rotate.set_defaults(func=_run, action=_kek_rotate)
