"""Which budgets a request counts against, and the UTC period each counts in."""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from datetime import UTC, datetime, timedelta

from relaygate.budgets.base import EVERY_USER, BudgetRule, Charge, Period


def period_bounds(period: Period, now: datetime) -> tuple[str, datetime, datetime]:
    """The period key ("2026-11-22" or "2026-11") and its [start, end) in UTC.

    A naive `now` is taken to be UTC.
    """
    now = now.replace(tzinfo=UTC) if now.tzinfo is None else now.astimezone(UTC)
    if period == "day":
        start = now.replace(hour=0, minute=0, second=0, microsecond=0)
        return start.strftime("%Y-%m-%d"), start, start + timedelta(days=1)
    if period == "month":
        start = now.replace(day=1, hour=0, minute=0, second=0, microsecond=0)
        end = (
            start.replace(year=start.year + 1, month=1)
            if start.month == 12
            else start.replace(month=start.month + 1)
        )
        return start.strftime("%Y-%m"), start, end
    raise ValueError(f"unknown budget period {period!r}")


def _subject_of(rule: BudgetRule, ids: Mapping[str, str | None]) -> str | None:
    current = ids.get(rule.scope)
    if not current:
        return None
    if rule.scope == "tenant":
        return current if rule.subject in ("", EVERY_USER, current) else None
    if rule.scope == "user" and rule.subject == EVERY_USER:
        return current
    return current if rule.subject == current else None


def charges_for(
    rules: Iterable[BudgetRule], subject_id_by_scope: Mapping[str, str | None], now: datetime
) -> list[Charge]:
    """The charges a request makes; `subject_id_by_scope` maps "tenant", "key" and "user" to the
    request's ids (None or missing: no such subject, e.g. no end user).

    - A rule of another tenant than `subject_id_by_scope["tenant"]` never applies.
    - A "user" rule needs an end-user id; subject "*" applies to every end user, each with a
      counter of their own.
    - A user's own budget replaces the "*" budget of the same period and hardness (so a user can
      be given more, or less, than everyone else); a "*" budget of another period or hardness
      still applies.
    """
    tenant = subject_id_by_scope.get("tenant")
    picked: list[Charge] = []
    for rule in rules:
        if tenant is not None and rule.tenant_id != tenant:
            continue
        subject = _subject_of(rule, subject_id_by_scope)
        if subject is None:
            continue
        key, start, end = period_bounds(rule.period, now)
        picked.append(Charge(rule, subject, key, start, end))
    own = {
        (c.rule.period, c.rule.hard)
        for c in picked
        if c.rule.scope == "user" and c.rule.subject != EVERY_USER
    }
    return [
        c
        for c in picked
        if not (
            c.rule.scope == "user"
            and c.rule.subject == EVERY_USER
            and (c.rule.period, c.rule.hard) in own
        )
    ]
