"""The audit log on SQLite and PostgreSQL: appends chain, and every kind of damage is found."""

from __future__ import annotations

import asyncio
import dataclasses
import json
from collections.abc import AsyncIterator
from pathlib import Path

import pytest
from sqlalchemy import delete, select, update
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from relaygate.audit.chain import chain_hash
from relaygate.audit.checkpoint import make_checkpoint, read_export
from relaygate.audit.commands import read_log
from relaygate.audit.log import MAX_IDS_PER_ENTRY, AuditLog
from relaygate.audit.signer import CheckpointSigner
from relaygate.audit.verify import Report, verify_log
from relaygate.store.database import create_engine, migrate_async, sessionmaker
from relaygate.store.tables import AuditEntry

ENTRIES = 8


@dataclasses.dataclass
class Log:
    url: str
    sessions: async_sessionmaker[AsyncSession]
    audit: AuditLog
    export: Path
    signer: CheckpointSigner

    async def verify(self, public_key: str | None = None) -> Report:
        return verify_log(
            await read_log(self.url), read_export(self.export), trusted_public_key=public_key
        )

    async def sql(self, *statements: object) -> None:
        async with self.sessions.begin() as session:
            for statement in statements:
                await session.execute(statement)  # type: ignore[call-overload]


@pytest.fixture
async def log(database_url: str, tmp_path: Path) -> AsyncIterator[Log]:
    await migrate_async(database_url)
    engine = create_engine(database_url)
    sessions = sessionmaker(engine)
    signer = CheckpointSigner.open({}, tmp_path)
    export = tmp_path / "export" / "checkpoints.jsonl"
    audit = AuditLog(sessions, signer, export)
    for n in range(1, ENTRIES + 1):
        await audit.append(
            "admin:op", "vault.rotate", f"secret:s{n}", tenant_id="acme", detail={"n": n}
        )
    await audit.checkpoint()
    yield Log(database_url, sessions, audit, export, signer)
    await engine.dispose()


async def test_an_intact_log_verifies(log: Log) -> None:
    report = await log.verify(log.signer.public_key)
    assert report.ok, report.problems
    assert report.entries == ENTRIES and report.checkpoints_checked == 1
    # The checkpoint went to the export file, outside the database.
    (exported,) = read_export(log.export)
    assert exported.size == ENTRIES and exported.signature_valid(log.signer.public_key)


async def test_a_modified_entry_is_named(log: Log) -> None:
    await log.sql(
        update(AuditEntry).where(AuditEntry.seq == 3).values(detail=json.dumps({"n": 99}))
    )
    report = await log.verify()
    assert "entry 3 modified: its content does not match its hash" in report.problems
    assert any("rewritten" in p for p in report.problems)


async def test_a_deleted_entry_is_named(log: Log) -> None:
    await log.sql(delete(AuditEntry).where(AuditEntry.seq.in_([4, 5])))
    report = await log.verify()
    assert "entries 4-5 deleted (sequence jumps to 6)" in report.problems


async def test_reordered_entries_are_named(log: Log) -> None:
    # Swap rows 3 and 4 wholesale (content and hashes), as an attacker reordering history would.
    await log.sql(
        update(AuditEntry).where(AuditEntry.seq == 3).values(seq=-3),
        update(AuditEntry).where(AuditEntry.seq == 4).values(seq=3),
        update(AuditEntry).where(AuditEntry.seq == -3).values(seq=4),
    )
    report = await log.verify()
    assert "entry 3 reordered: it follows entry 4, not entry 2" in report.problems


async def test_a_truncated_log_is_detected_by_the_checkpoint(log: Log) -> None:
    await log.sql(delete(AuditEntry).where(AuditEntry.seq > ENTRIES - 2))
    report = await log.verify()
    assert any(
        p.startswith("log truncated") and f"counts {ENTRIES} entries" in p for p in report.problems
    ), report.problems


async def test_a_consistently_rewritten_chain_is_caught_by_the_signed_checkpoint(log: Log) -> None:
    stored = await read_log(log.url)
    prev = stored[0].prev_hash
    rewrites = []
    for row in stored:
        entry = row.entry
        if entry.seq == 2:
            entry = dataclasses.replace(entry, detail=json.dumps({"n": "forged"}))
        new_hash = chain_hash(prev, entry)
        rewrites.append(
            update(AuditEntry)
            .where(AuditEntry.seq == entry.seq)
            .values(detail=entry.detail, prev_hash=prev, hash=new_hash)
        )
        prev = new_hash
    await log.sql(*rewrites)
    report = await log.verify()
    # The chain itself is consistent again; only the exported signature knows better.
    assert not any("modified" in p or "deleted" in p for p in report.problems)
    assert any(p.startswith("log rewritten") for p in report.problems), report.problems


async def test_a_checkpoint_signed_with_another_key_is_refused_when_the_key_is_pinned(
    log: Log, tmp_path: Path
) -> None:
    forger = CheckpointSigner.open({}, tmp_path / "forger")
    stored = await read_log(log.url)
    fake = make_checkpoint(forger, ENTRIES, stored[-1].hash, stored[-1].entry.created_at)
    report = verify_log(stored, [fake], trusted_public_key=log.signer.public_key)
    assert any("bad signature or untrusted key" in p for p in report.problems)
    # Unpinned it verifies (self-signed); pinning the deployment's key is what makes it count.
    assert verify_log(stored, [fake]).ok


async def test_high_volume_events_are_aggregated_but_stay_attributable(log: Log) -> None:
    for n in range(MAX_IDS_PER_ENTRY + 3):
        log.audit.note(
            "key:k1", "vault.use", "secret:s1@v1", tenant_id="acme", request_id=f"req_{n}"
        )
    log.audit.note("key:k2", "vault.use", "secret:s1@v1", tenant_id="acme", request_id="req_x")
    assert await log.audit.flush() == 3
    async with log.sessions() as session:
        rows = (
            (
                await session.execute(
                    select(AuditEntry)
                    .where(AuditEntry.action == "vault.use")
                    .order_by(AuditEntry.seq)
                )
            )
            .scalars()
            .all()
        )
    details = [(r.actor, json.loads(r.detail)) for r in rows]
    k1 = [d for actor, d in details if actor == "key:k1"]
    assert sum(d["count"] for d in k1) == MAX_IDS_PER_ENTRY + 3
    ids = [i for d in k1 for i in d["request_ids"]]
    assert ids == [f"req_{n}" for n in range(MAX_IDS_PER_ENTRY + 3)]  # none dropped
    assert [d["request_ids"] for actor, d in details if actor == "key:k2"] == [["req_x"]]
    assert (await log.verify()).ok


async def test_replicas_appending_at_once_keep_one_chain(log: Log, tmp_path: Path) -> None:
    engine = create_engine(log.url)
    other = AuditLog(sessionmaker(engine), log.signer, None)
    try:
        await asyncio.gather(
            *(
                (log.audit if n % 2 else other).append("admin:op", "policy.change", f"t{n}")
                for n in range(30)
            )
        )
    finally:
        await engine.dispose()
    report = await log.verify()
    assert report.ok, report.problems
    assert report.entries == ENTRIES + 30
