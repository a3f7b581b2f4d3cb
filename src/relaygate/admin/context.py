"""What the admin API needs from the running gateway."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from dataclasses import dataclass

from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from relaygate.vault.sealer import Sealer


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
