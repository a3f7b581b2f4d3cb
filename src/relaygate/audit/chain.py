"""How an audit entry is hashed into the chain.

`hash(n) = SHA-256(bytes(hash(n-1)) || canonical(entry n))` with `hash(0)` = 32 zero bytes, where
`canonical` is compact JSON with sorted keys of every stored field but the hashes. Changing any
field of an entry changes its hash, and every later entry commits to it through `prev_hash`.
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass
from datetime import datetime
from typing import Any

GENESIS = "0" * 64


@dataclass(frozen=True, slots=True)
class Entry:
    """One audit entry as hashed and stored."""

    seq: int
    created_at: datetime
    actor: str
    action: str
    tenant_id: str | None
    target: str
    detail: str  # canonical JSON text of the details

    def canonical(self) -> bytes:
        """The bytes the hash covers."""
        return json.dumps(
            {
                "seq": self.seq,
                "created_at": self.created_at.isoformat(timespec="microseconds"),
                "actor": self.actor,
                "action": self.action,
                "tenant_id": self.tenant_id,
                "target": self.target,
                "detail": self.detail,
            },
            sort_keys=True,
            separators=(",", ":"),
            ensure_ascii=False,
        ).encode()


def chain_hash(prev_hash: str, entry: Entry) -> str:
    """The hash of `entry` following an entry whose hash is `prev_hash`."""
    return hashlib.sha256(bytes.fromhex(prev_hash) + entry.canonical()).hexdigest()


def detail_text(detail: dict[str, Any]) -> str:
    """Details in the canonical form that is stored and hashed."""
    return json.dumps(
        detail, sort_keys=True, separators=(",", ":"), ensure_ascii=False, default=str
    )
