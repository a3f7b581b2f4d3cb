"""Check an audit log against its own hashes and against signed checkpoints.

Finds, and names by sequence number: a modified entry (its hash no longer matches its content), a
deleted entry (a gap in the sequence), a reordered or re-inserted entry (it does not follow its
predecessor's hash), a truncated log (shorter than a checkpoint says) and a rewritten log (the
chain recomputed consistently, but a checkpoint's head hash no longer matches).
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field

from relaygate.audit.chain import GENESIS, Entry, chain_hash
from relaygate.audit.checkpoint import Checkpoint


@dataclass(frozen=True, slots=True)
class StoredEntry:
    """An entry as read back, with the hashes stored next to it."""

    entry: Entry
    prev_hash: str
    hash: str


@dataclass(slots=True)
class Report:
    """What the verification found; `ok` when nothing."""

    entries: int = 0
    checkpoints_checked: int = 0
    problems: list[str] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        """No problem found."""
        return not self.problems


def verify_log(
    stored: Iterable[StoredEntry],
    checkpoints: Sequence[Checkpoint] = (),
    *,
    trusted_public_key: str | None = None,
) -> Report:
    """Walk the chain in sequence order and compare it with every checkpoint."""
    report = Report()
    rows = sorted(stored, key=lambda s: s.entry.seq)
    by_stored_hash = {s.hash: s.entry.seq for s in rows}
    heads: dict[int, str] = {0: GENESIS}  # recomputed hash after `size` entries (by seq)
    expected_seq = 1
    running = GENESIS
    for row in rows:
        seq = row.entry.seq
        if seq > expected_seq:
            missing = f"{expected_seq}" if seq == expected_seq + 1 else f"{expected_seq}-{seq - 1}"
            report.problems.append(f"entries {missing} deleted (sequence jumps to {seq})")
        if row.prev_hash != running:
            origin = by_stored_hash.get(row.prev_hash)
            if origin is not None and origin != seq - 1:
                report.problems.append(
                    f"entry {seq} reordered: it follows entry {origin}, not entry {seq - 1}"
                )
            elif seq <= expected_seq:
                report.problems.append(
                    f"entry {seq} does not follow entry {seq - 1} (its link was changed)"
                )
        computed = chain_hash(row.prev_hash, row.entry)
        if computed != row.hash:
            report.problems.append(f"entry {seq} modified: its content does not match its hash")
        # Continue from the stored hash so one damaged entry is reported once, not for the rest.
        running = row.hash
        heads[seq] = chain_hash(heads.get(seq - 1, row.prev_hash), row.entry)
        expected_seq = seq + 1
        report.entries += 1
    last = rows[-1].entry.seq if rows else 0
    for checkpoint in sorted(checkpoints, key=lambda c: c.size):
        report.checkpoints_checked += 1
        if not checkpoint.signature_valid(trusted_public_key):
            report.problems.append(
                f"checkpoint at size {checkpoint.size} ({checkpoint.created_at}):"
                " bad signature or untrusted key"
            )
            continue
        if checkpoint.size > last:
            report.problems.append(
                f"log truncated: checkpoint of {checkpoint.created_at} counts"
                f" {checkpoint.size} entries, the log ends at {last}"
            )
        elif heads.get(checkpoint.size) != checkpoint.head_hash:
            report.problems.append(
                f"log rewritten: entries up to {checkpoint.size} no longer hash to the head"
                f" signed at {checkpoint.created_at}"
            )
    return report
