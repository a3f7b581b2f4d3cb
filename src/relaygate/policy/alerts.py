"""Budget alerts: a soft cap crossed or a hard cap reached, logged and stored once per period."""

from __future__ import annotations

import logging
from datetime import UTC, datetime

from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from relaygate.budgets import Charge, SpendLedger
from relaygate.server.background import Background
from relaygate.store.tables import BudgetEvent

log = logging.getLogger("relaygate.budgets")

MAX_REMEMBERED = 100_000


class AlertSink:
    """Writes one `budget_events` row per budget, subject, period and kind."""

    def __init__(
        self,
        sessions: async_sessionmaker[AsyncSession],
        ledger: SpendLedger,
        background: Background,
    ) -> None:
        self._sessions = sessions
        self._ledger = ledger
        self._background = background
        self._seen: set[tuple[str, str, str, str]] = set()

    def soft_cap(self, charge: Charge) -> None:
        """A request crossed a soft cap."""
        if charge.rule.alert or charge.rule.downgrade_to:
            self._raise(charge, "soft_cap_crossed")

    def hard_cap(self, charge: Charge) -> None:
        """A request was refused by a hard cap."""
        self._raise(charge, "hard_cap_reached")

    def _raise(self, charge: Charge, kind: str) -> None:
        marker = (charge.rule.id, charge.subject_id, charge.period_key, kind)
        if marker in self._seen:
            return
        if len(self._seen) >= MAX_REMEMBERED:
            self._seen.clear()
        self._seen.add(marker)
        log.warning(
            "budget %s (%s %s, %s): %s for period %s",
            charge.rule.id,
            charge.rule.scope,
            "hard" if charge.rule.hard else "soft",
            charge.rule.period,
            kind.replace("_", " "),
            charge.period_key,
        )
        self._background.spawn(self._store(charge, kind), name="budget-alert")

    async def _store(self, charge: Charge, kind: str) -> None:
        spent, _reserved = await self._ledger.status(charge)
        try:
            async with self._sessions.begin() as session:
                session.add(
                    BudgetEvent(
                        tenant_id=charge.rule.tenant_id,
                        budget_id=charge.rule.id,
                        subject_id=charge.subject_id,
                        period_key=charge.period_key,
                        kind=kind,
                        spent_usd=spent,
                        limit_usd=charge.rule.limit_usd,
                        created_at=datetime.now(UTC),
                    )
                )
        except IntegrityError:
            pass  # another replica recorded it first
