"""Signed checkpoints: `(size, head hash, time)` signed with Ed25519, stored and exported.

The export is a JSON-lines file outside the database (by default in the data directory; point
`audit.export_path` at storage the database's administrators cannot rewrite). Without such an
anchor whoever controls the database could rewrite the whole chain consistently.
"""

from __future__ import annotations

import json
import os
from dataclasses import asdict, dataclass
from datetime import datetime
from pathlib import Path

from relaygate.audit.signer import CheckpointSigner, verify_signature


@dataclass(frozen=True, slots=True)
class Checkpoint:
    """A signed statement that the log had `size` entries ending in `head_hash`."""

    size: int
    head_hash: str
    created_at: str  # ISO 8601, UTC
    key_id: str
    public_key: str
    signature: str

    def statement(self) -> bytes:
        """The signed bytes."""
        return statement(self.size, self.head_hash, self.created_at)

    def signature_valid(self, trusted_public_key: str | None = None) -> bool:
        """The signature verifies (under the pinned key when one is given)."""
        key = trusted_public_key or self.public_key
        if trusted_public_key is not None and trusted_public_key != self.public_key:
            return False
        return verify_signature(key, self.signature, self.statement())


def statement(size: int, head_hash: str, created_at: str) -> bytes:
    """`relaygate-audit-checkpoint/v1`, size, head hash and time, one per line."""
    return f"relaygate-audit-checkpoint/v1\n{size}\n{head_hash}\n{created_at}".encode()


def make_checkpoint(
    signer: CheckpointSigner, size: int, head_hash: str, at: datetime
) -> Checkpoint:
    """Sign the log's current head."""
    stamp = at.isoformat(timespec="seconds")
    return Checkpoint(
        size=size,
        head_hash=head_hash,
        created_at=stamp,
        key_id=signer.key_id,
        public_key=signer.public_key,
        signature=signer.sign(statement(size, head_hash, stamp)),
    )


def export(path: Path, checkpoint: Checkpoint) -> None:
    """Append the checkpoint to the export file (one JSON object per line, fsync'ed)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    line = json.dumps(asdict(checkpoint), sort_keys=True) + "\n"
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o644)
    try:
        os.write(fd, line.encode())
        os.fsync(fd)
    finally:
        os.close(fd)


def read_export(path: Path) -> list[Checkpoint]:
    """Every checkpoint in an export file; ValueError naming the line if one is malformed."""
    found = []
    for number, line in enumerate(path.read_text(encoding="utf-8").splitlines(), start=1):
        if not line.strip():
            continue
        try:
            found.append(Checkpoint(**json.loads(line)))
        except (TypeError, ValueError):
            raise ValueError(f"{path.name} line {number} is not a checkpoint") from None
    return found
