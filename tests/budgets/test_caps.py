"""Hard and soft caps, reserve and settle: the same behaviour in memory and on real Redis."""

from __future__ import annotations

import asyncio
from datetime import timedelta

import pytest

from relaygate.budgets import Charge, charges_for
from tests.budgets.conftest import MakeLedger
from tests.budgets.helpers import IDS, T0, Seed, rule


async def test_a_hard_cap_admits_until_the_next_reservation_would_pass_it(
    make_ledger: MakeLedger,
) -> None:
    ledger = make_ledger(Seed())
    charges = charges_for([rule(1.0)], IDS, T0)
    decisions = [await ledger.reserve(charges, 0.3) for _ in range(4)]
    assert [d.allowed for d in decisions] == [True, True, True, False]
    assert [d.remaining_usd for d in decisions[:3]] == pytest.approx([0.7, 0.4, 0.1])
    refused = decisions[3]
    assert refused.refused_by == charges[0]
    assert (refused.reservation, refused.remaining_usd) == (None, None)
    assert await ledger.status(charges[0]) == pytest.approx((0.0, 0.9))
    # What is left still fits.
    assert (await ledger.reserve(charges, 0.1)).allowed


async def test_remaining_is_the_smallest_room_under_any_hard_cap(make_ledger: MakeLedger) -> None:
    ledger = make_ledger(Seed())
    charges = charges_for(
        [
            rule(2.0, scope="tenant", subject="acme"),
            rule(1.0, scope="key"),
            rule(0.2, scope="user", subject="*", hard=False),
        ],
        IDS,
        T0,
    )
    decision = await ledger.reserve(charges, 0.3)
    assert decision.allowed
    assert decision.remaining_usd == pytest.approx(0.7)
    only_soft = charges_for([rule(0.2, hard=False)], IDS, T0)
    assert (await ledger.reserve(only_soft, 0.1)).remaining_usd is None


async def test_no_budgets_means_allowed_with_an_empty_reservation(make_ledger: MakeLedger) -> None:
    ledger = make_ledger(Seed())
    decision = await ledger.reserve([], 12.5)
    assert decision.allowed and decision.reservation is not None
    assert decision.reservation.charges == ()
    assert decision.remaining_usd is None
    await ledger.settle(decision.reservation, 3.0)


async def test_settling_below_the_reservation_frees_the_difference(
    make_ledger: MakeLedger,
) -> None:
    ledger = make_ledger(Seed())
    charges = charges_for([rule(1.0)], IDS, T0)
    first = await ledger.reserve(charges, 0.6)
    assert first.reservation is not None
    assert not (await ledger.reserve(charges, 0.6)).allowed
    await ledger.settle(first.reservation, 0.1)
    assert await ledger.status(charges[0]) == pytest.approx((0.1, 0.0))
    again = await ledger.reserve(charges, 0.9)
    assert again.allowed and again.remaining_usd == pytest.approx(0.0)


async def test_a_second_settle_of_the_same_reservation_changes_nothing(
    make_ledger: MakeLedger,
) -> None:
    ledger = make_ledger(Seed())
    charges = charges_for([rule(1.0)], IDS, T0)
    first, second = [await ledger.reserve(charges, 0.4) for _ in range(2)]
    assert first.reservation is not None and second.reservation is not None
    await ledger.settle(first.reservation, 0.25)
    await ledger.settle(first.reservation, 0.25)
    await ledger.settle(first.reservation, 0.4)
    assert await ledger.status(charges[0]) == pytest.approx((0.25, 0.4))


async def test_a_cancelled_request_settles_at_zero_and_gives_everything_back(
    make_ledger: MakeLedger,
) -> None:
    ledger = make_ledger(Seed())
    charges = charges_for([rule(1.0), rule(3.0, scope="tenant", subject="acme")], IDS, T0)
    reserved = asyncio.Event()

    async def request() -> None:
        decision = await ledger.reserve(charges, 0.8)
        assert decision.reservation is not None
        try:
            reserved.set()
            await asyncio.Event().wait()  # the upstream call, until the client goes away
        finally:
            await ledger.settle(decision.reservation, 0.0)

    task = asyncio.ensure_future(request())
    await reserved.wait()
    assert (await ledger.status(charges[0]))[1] == pytest.approx(0.8)
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task
    for charge in charges:
        assert await ledger.status(charge) == (0.0, 0.0)
    assert (await ledger.reserve(charges, 1.0)).allowed


async def test_a_soft_cap_admits_and_reports_its_downgrade(make_ledger: MakeLedger) -> None:
    ledger = make_ledger(Seed())
    soft = rule(0.5, hard=False, downgrade_to="cheap", alert=True)
    charges = charges_for([soft], IDS, T0)
    under = await ledger.reserve(charges, 0.3)
    assert under.allowed and under.soft_exceeded == ()
    over = await ledger.reserve(charges, 0.3)
    assert over.allowed and over.reservation is not None
    assert over.soft_exceeded == (charges[0],)
    assert over.soft_exceeded[0].rule.downgrade_to == "cheap"
    assert over.soft_exceeded[0].rule.alert
    assert await ledger.status(charges[0]) == pytest.approx((0.0, 0.6))


async def test_a_refusal_takes_nothing_from_any_counter(make_ledger: MakeLedger) -> None:
    ledger = make_ledger(Seed())
    charges = charges_for(
        [
            rule(10.0, scope="key"),
            rule(0.2, scope="tenant", subject="acme"),
            rule(0.1, scope="user", subject="*", hard=False),
        ],
        IDS,
        T0,
    )
    decision = await ledger.reserve(charges, 0.5)
    assert not decision.allowed
    assert decision.refused_by is not None and decision.refused_by.rule.scope == "tenant"
    for charge in charges:
        assert await ledger.status(charge) == (0.0, 0.0)


async def test_each_user_of_an_every_user_budget_spends_separately(
    make_ledger: MakeLedger,
) -> None:
    ledger = make_ledger(Seed())
    every = rule(0.5, scope="user", subject="*")
    alice = charges_for([every], {**IDS, "user": "alice"}, T0)
    bob = charges_for([every], {**IDS, "user": "bob"}, T0)
    assert (await ledger.reserve(alice, 0.5)).allowed
    assert not (await ledger.reserve(alice, 0.01)).allowed
    assert (await ledger.reserve(bob, 0.5)).allowed


async def test_day_and_month_budgets_reset_with_their_periods(make_ledger: MakeLedger) -> None:
    ledger = make_ledger(Seed())
    rules = [rule(0.5), rule(1.0, period="month")]

    def at(days: int) -> list[Charge]:
        return charges_for(rules, IDS, T0 + timedelta(days=days))

    assert (await ledger.reserve(at(0), 0.5)).allowed
    refused = await ledger.reserve(at(0), 0.1)
    assert refused.refused_by is not None and refused.refused_by.rule.period == "day"
    assert (await ledger.reserve(at(1), 0.5)).allowed  # a new day; the month now holds 1.00
    refused = await ledger.reserve(at(2), 0.1)
    assert refused.refused_by is not None and refused.refused_by.rule.period == "month"
    next_month = at(31)
    assert next_month[1].period_key != at(0)[1].period_key
    assert (await ledger.reserve(next_month, 0.5)).allowed


async def test_a_refusal_carries_the_numbers_it_was_decided_on(make_ledger: MakeLedger) -> None:
    """Spent, held by requests in flight and this request's amount, in the refusing step: what
    the client's message is made of (budgets.message)."""
    ledger = make_ledger(Seed())
    charges = charges_for([rule(1.0)], IDS, T0)
    first = await ledger.reserve(charges, 0.25)
    assert first.allowed and first.shortfall is None and first.reservation is not None
    await ledger.settle(first.reservation, 0.2)
    assert (await ledger.reserve(charges, 0.3)).allowed
    refused = await ledger.reserve(charges, 0.6)
    assert not refused.allowed and refused.shortfall is not None
    short = refused.shortfall
    assert (short.spent_micros, short.reserved_micros, short.amount_micros) == (
        200_000,
        300_000,
        600_000,
    )
