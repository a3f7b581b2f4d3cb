"""`relaygate audit verify`: check the audit log against its hashes and signed checkpoints."""

from __future__ import annotations

import argparse
import asyncio
import sys
from datetime import UTC
from pathlib import Path
from typing import Any

from sqlalchemy import select

from relaygate.audit.chain import Entry
from relaygate.audit.checkpoint import Checkpoint, read_export
from relaygate.audit.verify import Report, StoredEntry, verify_log
from relaygate.config.schema import GatewayConfig
from relaygate.store.database import create_engine, sessionmaker
from relaygate.store.tables import AuditEntry


def _entry(entry: AuditEntry) -> Entry:
    created = entry.created_at
    if created.tzinfo is None:
        created = created.replace(tzinfo=UTC)
    return Entry(
        entry.seq,
        created,
        entry.actor,
        entry.action,
        entry.tenant_id,
        entry.target,
        entry.detail,
    )


async def read_log(database_url: str) -> list[StoredEntry]:
    """Every entry of the log, in sequence order."""
    engine = create_engine(database_url)
    try:
        async with sessionmaker(engine)() as session:
            rows = (await session.execute(select(AuditEntry).order_by(AuditEntry.seq))).scalars()
            return [StoredEntry(_entry(r), r.prev_hash, r.hash) for r in rows]
    finally:
        await engine.dispose()


def verify_deployment(
    config: GatewayConfig, checkpoints_path: Path | None, public_key: str | None
) -> Report:
    """Verify the configured deployment's log against the exported checkpoints."""
    path = checkpoints_path or config.audit.export_path
    if path is None:
        path = config.server.data_dir / "audit-checkpoints.jsonl"
    checkpoints: list[Checkpoint] = read_export(path) if path.exists() else []
    stored = asyncio.run(read_log(config.server.resolved_database_url()))
    return verify_log(stored, checkpoints, trusted_public_key=public_key)


def _cmd_verify(args: argparse.Namespace) -> int:
    from relaygate.cli import load_or_explain

    config = load_or_explain(args.config)
    if config is None:
        return 2
    try:
        report = verify_deployment(
            config, Path(args.checkpoints) if args.checkpoints else None, args.public_key
        )
    except ValueError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    if report.ok:
        print(
            f"audit log OK: {report.entries} entries, {report.checkpoints_checked}"
            " signed checkpoints match"
        )
        return 0
    print(f"audit log DAMAGED ({report.entries} entries read):")
    for problem in report.problems:
        print(f"  - {problem}")
    return 1


def add_commands(sub: Any) -> None:
    """Register `audit verify`."""
    audit = sub.add_parser("audit", help="the tamper-evident audit log").add_subparsers(
        dest="audit_command", required=True
    )
    verify = audit.add_parser("verify", help="detect modified, deleted, reordered, truncated")
    verify.add_argument("--config")
    verify.add_argument(
        "--checkpoints", help="exported checkpoint file (default: the configured export path)"
    )
    verify.add_argument("--public-key", help="pin the checkpoint signing key (base64url)")
    verify.set_defaults(func=_cmd_verify)
