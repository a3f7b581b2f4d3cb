"""The in-memory key table: the hot path authenticates without touching the database."""

from __future__ import annotations

import hmac
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import UTC, datetime

from relaygate.auth.keys import hash_key


@dataclass(frozen=True, slots=True)
class Principal:
    """Who is calling: the key and the tenant/environment it belongs to."""

    key_id: str
    tenant_id: str
    environment: str
    kind: str = "tenant"


@dataclass(frozen=True, slots=True)
class KeyEntry:
    """One active key as held in memory."""

    key_hash: str
    principal: Principal
    expires_at: datetime | None = None


class Keyring:
    """Maps key hashes to principals. Replaced wholesale on refresh, so reads need no lock."""

    def __init__(self, entries: Iterable[KeyEntry] = ()) -> None:
        self._by_hash: dict[str, KeyEntry] = {e.key_hash: e for e in entries}

    def replace(self, entries: Iterable[KeyEntry]) -> None:
        """Swap in a freshly loaded table."""
        self._by_hash = {e.key_hash: e for e in entries}

    def add(self, entry: KeyEntry) -> None:
        """Add one key (after creating it)."""
        self._by_hash = {**self._by_hash, entry.key_hash: entry}

    def authenticate(self, presented: str, now: datetime | None = None) -> Principal | None:
        """The principal for `presented`, or None for an unknown, expired or revoked key."""
        digest = hash_key(presented)
        entry = self._by_hash.get(digest)
        if entry is None or not hmac.compare_digest(entry.key_hash, digest):
            return None
        if entry.expires_at is not None and (now or datetime.now(UTC)) >= entry.expires_at:
            return None
        return entry.principal

    def __len__(self) -> int:
        return len(self._by_hash)
