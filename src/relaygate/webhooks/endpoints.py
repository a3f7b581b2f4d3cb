"""A tenant's registered webhook receivers and their signing secrets.

A job's `callback_url` must start with the URL of one of its tenant's enabled endpoints, so the
gateway only calls receivers an administrator registered, and every delivery has a secret the
receiver knows. Secrets are sealed at rest; during a rotation the old secret keeps signing
(beside the new one) until it expires, so receivers can switch without missing a message.
"""

from __future__ import annotations

import ipaddress
import secrets as random_ids
from collections.abc import Mapping, Sequence
from datetime import UTC, datetime, timedelta
from typing import Any

import orjson
from sqlalchemy import delete, func, select
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from relaygate.store.tables import WebhookAttempt, WebhookEndpoint, WebhookMessage
from relaygate.vault.sealer import Sealer
from relaygate.webhooks.signing import new_secret


def _place(endpoint_id: str) -> str:
    return f"webhook_endpoints/{endpoint_id}/secrets"


def seal_secrets(sealer: Sealer, endpoint_id: str, entries: list[dict[str, object]]) -> str:
    """Seal the list of `{"secret", "expires_at"}` entries of an endpoint."""
    return sealer.seal(orjson.dumps(entries), _place(endpoint_id))


def open_secrets(sealer: Sealer, row: WebhookEndpoint) -> list[dict[str, object]]:
    """Every stored secret entry of an endpoint (expired ones included)."""
    entries: list[dict[str, object]] = orjson.loads(sealer.open(row.secrets, _place(row.id)))
    return entries


def _unexpired(entries: list[dict[str, object]], now: datetime) -> list[dict[str, object]]:
    """The entries still signing at `now` (no expiry: the current secret)."""
    return [
        entry
        for entry in entries
        if entry.get("expires_at") is None or datetime.fromisoformat(str(entry["expires_at"])) > now
    ]


def active_secrets(sealer: Sealer, row: WebhookEndpoint, now: datetime) -> tuple[str, ...]:
    """The secrets still signing at `now`: the current one and any not yet expired."""
    return tuple(str(entry["secret"]) for entry in _unexpired(open_secrets(sealer, row), now))


def parse_networks(values: Sequence[str] | None) -> list[str]:
    """Validate private networks a tenant opens deliberately (e.g. `10.0.0.5/32`)."""
    networks = []
    for value in values or ():
        try:
            networks.append(str(ipaddress.ip_network(value, strict=False)))
        except ValueError:
            raise ValueError(f"'{value[:60]}' is not an IP network (e.g. 10.0.0.5/32)") from None
    return networks


class DuplicateEndpoint(Exception):
    """The tenant already has an endpoint with this URL (its id is `endpoint_id`)."""

    def __init__(self, endpoint_id: str) -> None:
        super().__init__(endpoint_id)
        self.endpoint_id = endpoint_id


class EndpointStore:
    """Database access for webhook endpoints."""

    def __init__(self, sessions: async_sessionmaker[AsyncSession], sealer: Sealer) -> None:
        self.sessions = sessions
        self.sealer = sealer

    @staticmethod
    async def _refuse_duplicate(
        session: AsyncSession, tenant_id: str, url: str, except_id: str | None = None
    ) -> None:
        query = select(WebhookEndpoint.id).where(
            WebhookEndpoint.tenant_id == tenant_id, WebhookEndpoint.url == url
        )
        if except_id is not None:
            query = query.where(WebhookEndpoint.id != except_id)
        existing = await session.scalar(query.limit(1))
        if existing is not None:
            raise DuplicateEndpoint(existing)

    async def create(
        self,
        tenant_id: str,
        url: str,
        description: str,
        allow_private: Sequence[str] | None,
        events: Sequence[str] | None = None,
    ) -> tuple[WebhookEndpoint, str]:
        """Register an endpoint; returns it and its first secret (shown once).
        DuplicateEndpoint if the tenant has one with this URL already."""
        endpoint_id = "ep_" + random_ids.token_urlsafe(15)
        secret = new_secret()
        row = WebhookEndpoint(
            id=endpoint_id,
            tenant_id=tenant_id,
            url=url,
            description=description,
            secrets=seal_secrets(
                self.sealer, endpoint_id, [{"secret": secret, "expires_at": None}]
            ),
            allow_private=parse_networks(allow_private) or None,
            events=list(events) if events is not None else None,
            created_at=datetime.now(UTC),
            consecutive_failures=0,
            delivered_count=0,
            failed_count=0,
            refused_count=0,
        )
        async with self.sessions() as session, session.begin():
            await self._refuse_duplicate(session, tenant_id, url)
            session.add(row)
        return row, secret

    async def update(self, row: WebhookEndpoint, changes: Mapping[str, Any]) -> WebhookEndpoint:
        """Apply `changes` (url, description, allow_private, events, enabled) already checked
        by the caller; DuplicateEndpoint if the new URL is taken by another endpoint."""
        async with self.sessions() as session, session.begin():
            stored = await session.get(WebhookEndpoint, row.id)
            if stored is None:
                raise LookupError(row.id)
            if "url" in changes and changes["url"] != stored.url:
                await self._refuse_duplicate(session, stored.tenant_id, changes["url"], stored.id)
                stored.url = changes["url"]
            if "description" in changes:
                stored.description = changes["description"]
            if "allow_private" in changes:
                stored.allow_private = parse_networks(changes["allow_private"]) or None
            if "events" in changes:
                stored.events = changes["events"]
            if "enabled" in changes and changes["enabled"] is not None:
                enabled = bool(changes["enabled"])
                if enabled and stored.disabled_at is not None:
                    stored.disabled_at = stored.disabled_reason = None
                    stored.failing_since = None
                    stored.consecutive_failures = 0
                elif not enabled and stored.disabled_at is None:
                    stored.disabled_at = datetime.now(UTC)
                    stored.disabled_reason = "disabled by an admin"
        fresh = await self.get(row.id, row.tenant_id)
        if fresh is None:
            raise LookupError(row.id)
        return fresh

    async def delete(self, row: WebhookEndpoint) -> int:
        """Remove an endpoint with its messages and their delivery log; the number of messages
        still pending that will never be sent."""
        async with self.sessions() as session, session.begin():
            messages = select(WebhookMessage.id).where(WebhookMessage.endpoint_id == row.id)
            pending = await session.scalar(
                select(func.count())
                .select_from(WebhookMessage)
                .where(WebhookMessage.endpoint_id == row.id, WebhookMessage.status == "pending")
            )
            await session.execute(
                delete(WebhookAttempt).where(WebhookAttempt.message_id.in_(messages))
            )
            await session.execute(
                delete(WebhookMessage).where(WebhookMessage.endpoint_id == row.id)
            )
            await session.execute(delete(WebhookEndpoint).where(WebhookEndpoint.id == row.id))
        return int(pending or 0)

    async def get(self, endpoint_id: str, tenant_id: str | None) -> WebhookEndpoint | None:
        """The endpoint, or None (also when it belongs to another tenant)."""
        async with self.sessions() as session:
            row = await session.get(WebhookEndpoint, endpoint_id)
        if row is None or (tenant_id is not None and row.tenant_id != tenant_id):
            return None
        return row

    async def list(self, tenant_id: str | None) -> Sequence[WebhookEndpoint]:
        """Endpoints of one tenant (or of all, for the operator)."""
        query = select(WebhookEndpoint).order_by(WebhookEndpoint.created_at)
        if tenant_id is not None:
            query = query.where(WebhookEndpoint.tenant_id == tenant_id)
        async with self.sessions() as session:
            return (await session.scalars(query)).all()

    async def rotate(self, row: WebhookEndpoint, overlap_s: float) -> str:
        """A new secret; the previous ones keep signing for `overlap_s` seconds."""
        now = datetime.now(UTC)
        until = (now + timedelta(seconds=overlap_s)).isoformat()
        kept: list[dict[str, object]] = [
            {"secret": entry["secret"], "expires_at": entry.get("expires_at") or until}
            for entry in _unexpired(open_secrets(self.sealer, row), now)
        ]
        secret = new_secret()
        kept.append({"secret": secret, "expires_at": None})
        async with self.sessions() as session, session.begin():
            stored = await session.get(WebhookEndpoint, row.id)
            assert stored is not None
            stored.secrets = seal_secrets(self.sealer, row.id, kept)
        return secret

    async def match(self, tenant_id: str, callback_url: str) -> WebhookEndpoint | None:
        """The tenant's enabled endpoint whose URL `callback_url` starts with (longest first)."""
        best: WebhookEndpoint | None = None
        for row in await self.list(tenant_id):
            if row.disabled_at is not None or not covers(row.url, callback_url):
                continue
            if best is None or len(row.url) > len(best.url):
                best = row
        return best


def covers(endpoint_url: str, callback_url: str) -> bool:
    """Whether `callback_url` is `endpoint_url` or below it (a path or query boundary)."""
    if callback_url == endpoint_url:
        return True
    if not callback_url.startswith(endpoint_url):
        return False
    return endpoint_url.endswith("/") or callback_url[len(endpoint_url)] in "/?"
