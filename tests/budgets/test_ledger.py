"""The spend ledger: hard and soft caps, reserve/settle, seeding, periods, replicas, outages."""

from __future__ import annotations

import asyncio
import random
from collections.abc import AsyncIterator, Callable
from datetime import UTC, datetime, timedelta

import pytest
import redis.asyncio as redis

from relaygate.budgets import (
    BudgetRule,
    Charge,
    FallbackLedger,
    LedgerUnavailable,
    MemoryLedger,
    RedisLedger,
    SpendLedger,
    charges_for,
    period_bounds,
    refusal_message,
)
from tests.support.servers import free_port
from tests.support.services import unique_prefix

NOW = datetime.now(UTC)  # counters of periods that have ended are dropped
IDS = {"tenant": "acme", "key": "k1", "user": "wp-7"}


def rule(
    limit: float, *, scope: str = "key", subject: str = "k1", hard: bool = True, **extra: object
) -> BudgetRule:
    return BudgetRule(
        id=f"b-{scope}-{subject}-{limit}-{hard}",
        tenant_id="acme",
        scope=scope,  # type: ignore[arg-type]
        subject=subject,
        period=extra.pop("period", "day"),  # type: ignore[arg-type]
        limit_usd=limit,
        hard=hard,
        **extra,  # type: ignore[arg-type]
    )


def seeded(values: dict[str, float] | None = None) -> Callable[[Charge], object]:
    async def seed(charge: Charge) -> float:
        return (values or {}).get(charge.rule.id, 0.0)

    return seed


@pytest.fixture
async def redis_client(redis_url: str) -> AsyncIterator[redis.Redis]:
    client = redis.Redis.from_url(redis_url)
    yield client
    await client.aclose()


@pytest.fixture(params=["memory", "redis"])
async def make_ledger(
    request: pytest.FixtureRequest,
) -> AsyncIterator[Callable[[dict[str, float] | None], SpendLedger]]:
    clients: list[redis.Redis] = []

    def make(seed: dict[str, float] | None = None) -> SpendLedger:
        if request.param == "memory":
            return MemoryLedger(seeded(seed))  # type: ignore[arg-type]
        clients.append(redis.Redis.from_url(request.getfixturevalue("redis_url")))
        return RedisLedger(clients[-1], unique_prefix(), seeded(seed))  # type: ignore[arg-type]

    yield make
    for client in clients:
        await client.aclose()


def test_periods_are_utc_days_and_calendar_months() -> None:
    assert period_bounds("day", datetime(2026, 11, 22, 15, 30, tzinfo=UTC))[0] == "2026-11-22"
    key, start, end = period_bounds("month", datetime(2026, 12, 31, 23, 59, tzinfo=UTC))
    assert (key, start.month, end.year, end.month) == ("2026-12", 12, 2027, 1)


def test_charges_pick_matching_rules_and_a_users_own_budget_wins() -> None:
    rules = [
        rule(5, scope="tenant", subject="acme"),
        rule(1, scope="key", subject="k1"),
        rule(1, scope="key", subject="other-key"),
        rule(0.5, scope="user", subject="*"),
        rule(2, scope="user", subject="wp-7"),
    ]
    picked = charges_for(rules, IDS, NOW)
    assert sorted((c.rule.scope, c.subject_id) for c in picked) == [
        ("key", "k1"),
        ("tenant", "acme"),
        ("user", "wp-7"),
    ]
    assert next(c for c in picked if c.rule.scope == "user").rule.limit_usd == 2
    no_user = charges_for(rules, {**IDS, "user": None}, NOW)
    assert all(c.rule.scope != "user" for c in no_user)


async def test_hard_cap_refuses_once_reservations_fill_it(make_ledger: Callable) -> None:
    ledger = make_ledger()
    charges = charges_for([rule(1.0)], IDS, NOW)
    decisions = [await ledger.reserve(charges, 0.3) for _ in range(4)]
    assert [d.allowed for d in decisions] == [True, True, True, False]
    assert decisions[2].remaining_usd == pytest.approx(0.1)
    assert decisions[3].refused_by == charges[0]
    assert "daily budget of $1.00 for this key is exhausted" in refusal_message(charges[0])


async def test_settling_below_the_reservation_frees_budget(make_ledger: Callable) -> None:
    ledger = make_ledger()
    charges = charges_for([rule(1.0)], IDS, NOW)
    first = await ledger.reserve(charges, 0.6)
    assert not (await ledger.reserve(charges, 0.6)).allowed
    assert first.reservation is not None
    await ledger.settle(first.reservation, 0.1)
    await ledger.settle(first.reservation, 0.1)  # idempotent
    assert await ledger.status(charges[0]) == pytest.approx((0.1, 0.0))
    assert (await ledger.reserve(charges, 0.6)).allowed


async def test_soft_cap_admits_and_reports(make_ledger: Callable) -> None:
    ledger = make_ledger()
    soft = rule(0.1, hard=False, downgrade_to="fast", alert=True)
    charges = charges_for([soft], IDS, NOW)
    decision = await ledger.reserve(charges, 0.5)
    assert decision.allowed
    assert [c.rule.downgrade_to for c in decision.soft_exceeded] == ["fast"]


async def test_refusal_takes_nothing_from_other_charges(make_ledger: Callable) -> None:
    ledger = make_ledger()
    charges = charges_for([rule(10.0), rule(0.2, scope="tenant", subject="acme")], IDS, NOW)
    assert not (await ledger.reserve(charges, 0.5)).allowed
    key_charge = next(c for c in charges if c.rule.scope == "key")
    assert await ledger.status(key_charge) == (0.0, 0.0)


async def test_each_user_and_each_period_has_its_own_counter(make_ledger: Callable) -> None:
    ledger = make_ledger()
    every_user = rule(0.5, scope="user", subject="*")
    alice = charges_for([every_user], {**IDS, "user": "alice"}, NOW)
    bob = charges_for([every_user], {**IDS, "user": "bob"}, NOW)
    assert (await ledger.reserve(alice, 0.5)).allowed
    assert not (await ledger.reserve(alice, 0.1)).allowed
    assert (await ledger.reserve(bob, 0.5)).allowed
    tomorrow = charges_for([every_user], {**IDS, "user": "alice"}, NOW + timedelta(days=1))
    assert (await ledger.reserve(tomorrow, 0.5)).allowed


async def test_counters_start_from_recorded_spend(make_ledger: Callable) -> None:
    budget = rule(1.0)
    ledger = make_ledger({budget.id: 0.95})
    charges = charges_for([budget], IDS, NOW)
    assert not (await ledger.reserve(charges, 0.1)).allowed
    assert (await ledger.reserve(charges, 0.05)).allowed


async def test_extend_stops_at_a_hard_cap(make_ledger: Callable) -> None:
    ledger = make_ledger()
    charges = charges_for([rule(1.0)], IDS, NOW)
    decision = await ledger.reserve(charges, 0.5)
    assert decision.reservation is not None
    grown = await ledger.extend(decision.reservation, 0.4)
    assert grown is not None and grown.amount_micros == 900_000
    assert await ledger.extend(grown, 0.2) is None
    assert await ledger.status(charges[0]) == pytest.approx((0.0, 0.9))
    await ledger.settle(grown, 0.9)
    assert await ledger.status(charges[0]) == pytest.approx((0.9, 0.0))


async def test_two_replicas_seeding_at_once_count_the_seed_once(redis_url: str) -> None:
    prefix = unique_prefix()
    budget = rule(1.0)
    clients = [redis.Redis.from_url(redis_url) for _ in range(2)]
    try:
        ledgers = [RedisLedger(c, prefix, seeded({budget.id: 0.4})) for c in clients]  # type: ignore[arg-type]
        charges = charges_for([budget], IDS, NOW)
        await asyncio.gather(*(ledger.reserve(charges, 0.1) for ledger in ledgers))
        assert await ledgers[0].status(charges[0]) == pytest.approx((0.4, 0.2))
    finally:
        for client in clients:
            await client.aclose()


async def test_an_unsettled_reservation_expires(redis_client: redis.Redis) -> None:
    ledger = RedisLedger(redis_client, unique_prefix(), seeded(), reservation_ttl_s=0.2)  # type: ignore[arg-type]
    charges = charges_for([rule(1.0)], IDS, NOW)
    assert (await ledger.reserve(charges, 0.9)).allowed  # its replica "crashes": never settled
    assert not (await ledger.reserve(charges, 0.9)).allowed
    await asyncio.sleep(0.3)
    assert (await ledger.reserve(charges, 0.9)).allowed


async def _overshoot_proof(ledgers: list[SpendLedger]) -> float:
    """30 concurrent workers spend $0.01-0.05 a request until the $1.00 cap refuses them."""
    charges = charges_for([rule(1.0)], IDS, NOW)
    rng = random.Random(7)

    async def worker(index: int) -> None:
        ledger = ledgers[index % len(ledgers)]
        while (decision := await ledger.reserve(charges, 0.05)).reservation is not None:
            await asyncio.sleep(rng.random() / 200)
            await ledger.settle(decision.reservation, rng.uniform(0.01, 0.05))

    await asyncio.gather(*(worker(i) for i in range(30)))
    spent, reserved = await ledgers[0].status(charges[0])
    assert reserved == pytest.approx(0.0)
    return spent


async def test_concurrent_requests_never_overshoot_in_one_process() -> None:
    spent = await _overshoot_proof([MemoryLedger(seeded())])  # type: ignore[arg-type]
    # Never more than one reservation ($0.05) over; a worker stops only when $0.05 no longer
    # fits, so the last stop happens above $1.00 - 30 x $0.05.
    assert 0.5 <= spent <= 1.05


async def test_three_replicas_never_overshoot(redis_url: str) -> None:
    prefix = unique_prefix()
    clients = [redis.Redis.from_url(redis_url) for _ in range(3)]
    try:
        spent = await _overshoot_proof([RedisLedger(c, prefix, seeded()) for c in clients])  # type: ignore[arg-type]
    finally:
        for client in clients:
            await client.aclose()
    assert 0.5 <= spent <= 1.05


async def test_unreachable_redis_falls_back_locally_or_refuses() -> None:
    dead = redis.Redis.from_url(f"redis://127.0.0.1:{free_port()}/0", socket_connect_timeout=0.2)
    try:
        charges = charges_for([rule(1.0)], IDS, NOW)
        primary = RedisLedger(dead, "x:", seeded())  # type: ignore[arg-type]
        local = FallbackLedger(primary, MemoryLedger(seeded()), "local")  # type: ignore[arg-type]
        decisions = [await local.reserve(charges, 0.4) for _ in range(3)]
        assert [d.allowed for d in decisions] == [True, True, False]
        assert decisions[0].reservation is not None
        assert decisions[0].reservation.backend == "memory"
        assert not local.healthy
        assert local.attempts == 1  # the cool-down spared the other requests the timeout
        closed = FallbackLedger(primary, MemoryLedger(seeded()), "closed")  # type: ignore[arg-type]
        with pytest.raises(LedgerUnavailable):
            await closed.reserve(charges, 0.1)
    finally:
        await dead.aclose()
