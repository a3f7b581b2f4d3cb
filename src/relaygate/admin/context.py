"""What the admin API needs from the running gateway."""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass
from typing import TYPE_CHECKING

from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from relaygate.vault.sealer import Sealer

if TYPE_CHECKING:
    from relaygate.audit.log import AuditLog
    from relaygate.config.schema import VaultConfig
    from relaygate.vault.kms.base import KeyEncryptionKey
    from relaygate.webhooks.outbox import Outbox


@dataclass(frozen=True, slots=True)
class AdminPrincipal:
    """An admin key: the operator's (`tenant_id` None, every tenant) or one tenant's."""

    key_id: str
    tenant_id: str | None


@dataclass(slots=True)
class AdminContext:
    """Database access, the sealer, and hooks into the gateway's in-memory state."""

    sessions: async_sessionmaker[AsyncSession]
    sealer: Sealer
    routes: frozenset[str]
    reload_policy: Callable[[], Awaitable[None]]
    flush_usage: Callable[[], Awaitable[object]]
    authenticate_admin: Callable[[str], AdminPrincipal | None]
    vault: VaultAccess | None = None
    audit: AuditLog | None = None
    outbox: Outbox | None = None


@dataclass(frozen=True, slots=True)
class VaultAccess:
    """What the vault routes need: the KEK, the audit log, signature checks, defaults."""

    kek: KeyEncryptionKey
    audit: AuditLog
    defaults: VaultConfig
    # (headers, method, signed path, body) -> the signing admin key's id, or AuthFailed.
    verify_signature: Callable[[Mapping[str, str], str, str, bytes], Awaitable[str]]
    clear_cache: Callable[[], None]
    # How long every replica needs to pick up a change (old KEK versions are retired after it).
    settle_s: float = 0.0
