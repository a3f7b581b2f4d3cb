"""Which budgets a request counts against, in which UTC period, and what a refusal says."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta, timezone

from relaygate.budgets import Shortfall, charges_for, period_bounds, refusal_message
from tests.budgets.helpers import IDS, T0, rule


def test_a_day_is_a_utc_calendar_day() -> None:
    key, start, end = period_bounds("day", datetime(2026, 11, 22, 15, 30, tzinfo=UTC))
    assert (key, start, end) == (
        "2026-11-22",
        datetime(2026, 11, 22, tzinfo=UTC),
        datetime(2026, 11, 23, tzinfo=UTC),
    )
    # 23:30 in New York (UTC-5) is already the next day in UTC.
    new_york = timezone(timedelta(hours=-5))
    assert period_bounds("day", datetime(2026, 11, 22, 23, 30, tzinfo=new_york))[0] == "2026-11-23"
    # A naive time is taken as UTC, not as the machine's local time.
    assert period_bounds("day", datetime(2026, 11, 22, 23, 30))[0] == "2026-11-22"


def test_a_month_is_a_utc_calendar_month() -> None:
    key, start, end = period_bounds("month", datetime(2026, 12, 31, 23, 59, tzinfo=UTC))
    assert (key, start, end) == (
        "2026-12",
        datetime(2026, 12, 1, tzinfo=UTC),
        datetime(2027, 1, 1, tzinfo=UTC),
    )
    assert period_bounds("month", datetime(2028, 2, 29, tzinfo=UTC))[2] == datetime(
        2028, 3, 1, tzinfo=UTC
    )


def test_a_request_counts_against_its_tenant_key_and_user_budgets_only() -> None:
    rules = [
        rule(5, scope="tenant", subject="acme"),
        rule(1, scope="key", subject="k1"),
        rule(1, scope="key", subject="other-key"),
        rule(2, scope="user", subject="someone-else"),
        rule(3, scope="tenant", subject="globex", tenant="globex"),
        rule(4, scope="key", subject="k1", tenant="globex"),  # another tenant's rule
    ]
    picked = charges_for(rules, IDS, T0)
    assert sorted((c.rule.scope, c.subject_id, c.rule.limit_usd) for c in picked) == [
        ("key", "k1", 1),
        ("tenant", "acme", 5),
    ]
    day = picked[0]
    assert (day.period_key, day.period_start, day.period_end) == period_bounds("day", T0)


def test_user_budgets_need_an_end_user() -> None:
    rules = [rule(0.5, scope="user", subject="*"), rule(1, scope="key", subject="k1")]
    assert [c.rule.scope for c in charges_for(rules, {**IDS, "user": None}, T0)] == ["key"]
    assert [c.rule.scope for c in charges_for(rules, {"tenant": "acme", "key": "k1"}, T0)] == [
        "key"
    ]


def test_an_every_user_budget_gives_each_user_a_counter_of_their_own() -> None:
    every = rule(0.5, scope="user", subject="*")
    alice = charges_for([every], {**IDS, "user": "alice"}, T0)
    bob = charges_for([every], {**IDS, "user": "bob"}, T0)
    assert [c.subject_id for c in alice + bob] == ["alice", "bob"]
    assert alice[0].counter != bob[0].counter


def test_a_users_own_budget_replaces_the_every_user_budget_of_the_same_kind() -> None:
    every_day_hard = rule(0.5, scope="user", subject="*")
    every_day_soft = rule(0.2, scope="user", subject="*", hard=False)
    every_month_hard = rule(5, scope="user", subject="*", period="month")
    vip_day_hard = rule(10, scope="user", subject="vip")
    rules = [every_day_hard, every_day_soft, every_month_hard, vip_day_hard]

    vip = {c.rule for c in charges_for(rules, {**IDS, "user": "vip"}, T0)}
    assert vip == {vip_day_hard, every_day_soft, every_month_hard}
    others = {c.rule for c in charges_for(rules, {**IDS, "user": "alice"}, T0)}
    assert others == {every_day_hard, every_day_soft, every_month_hard}


def test_the_refusal_names_the_budget_and_when_it_resets() -> None:
    day = charges_for([rule(5, scope="key")], IDS, datetime(2026, 11, 22, 9, tzinfo=UTC))[0]
    assert refusal_message(day) == (
        "daily budget of $5.00 for this key is exhausted (resets 2026-11-23T00:00:00Z)"
    )
    month = charges_for(
        [rule(1250, scope="tenant", subject="acme", period="month")],
        IDS,
        datetime(2026, 12, 5, tzinfo=UTC),
    )[0]
    assert refusal_message(month) == (
        "monthly budget of $1,250.00 for this account is exhausted (resets 2027-01-01T00:00:00Z)"
    )
    tiny = charges_for([rule(0.005, scope="user", subject="*")], IDS, T0)[0]
    message = refusal_message(tiny)
    assert message.startswith("daily budget of $0.005 for this user is exhausted")
    # Nothing that identifies the tenant, the key, the user or the rule.
    assert not any(secret in message for secret in ("acme", "k1", "wp-7", tiny.rule.id))


def test_a_refusal_by_the_reservation_says_so_with_the_numbers() -> None:
    """A hard cap with nothing spent refuses a request whose maximum cost does not fit: the
    message says that, not "exhausted"."""
    day = charges_for([rule(0.003, scope="key")], IDS, datetime(2026, 11, 22, 9, tzinfo=UTC))[0]
    message = refusal_message(day, Shortfall(0, 0, 4_000))
    assert message == (
        "daily budget of $0.003 for this key cannot cover this request: it may cost up to"
        " $0.004 (its prompt and its maximum output at the route's highest price), more than"
        " the $0.003 left (limit $0.003, spent $0.00, held for requests in flight $0.00);"
        " lower max_tokens, or wait for the reset at 2026-11-23T00:00:00Z"
    )
    assert "exhausted" not in message
    held = refusal_message(day, Shortfall(1_000, 2_500, 600))
    assert "it may cost up to $0.0006" in held
    assert "more than the $0.00 left (limit $0.003, spent $0.001," in held
    assert "held for requests in flight $0.0025)" in held
    spent = refusal_message(day, Shortfall(3_000, 0, 600))
    assert spent == (
        "daily budget of $0.003 for this key is exhausted ($0.003 spent;"
        " resets 2026-11-23T00:00:00Z)"
    )
