"""Growing a live reservation (a stream that costs more than it reserved)."""

from __future__ import annotations

import pytest

from relaygate.budgets import charges_for
from tests.budgets.conftest import MakeLedger
from tests.budgets.helpers import IDS, T0, Seed, rule


async def test_a_reservation_grows_while_the_hard_cap_has_room(make_ledger: MakeLedger) -> None:
    ledger = make_ledger(Seed())
    charges = charges_for(
        [rule(1.0), rule(0.5, scope="tenant", subject="acme", hard=False)], IDS, T0
    )
    decision = await ledger.reserve(charges, 0.5)
    assert decision.reservation is not None
    grown = await ledger.extend(decision.reservation, 0.4)
    assert grown is not None and grown.amount_micros == 900_000
    for charge in charges:  # a soft cap counts the extension too, and never refuses it
        assert await ledger.status(charge) == pytest.approx((0.0, 0.9))
    await ledger.settle(grown, 0.85)
    for charge in charges:
        assert await ledger.status(charge) == pytest.approx((0.85, 0.0))


async def test_an_extension_past_a_hard_cap_is_refused_and_changes_nothing(
    make_ledger: MakeLedger,
) -> None:
    ledger = make_ledger(Seed())
    charges = charges_for([rule(5.0, scope="tenant", subject="acme"), rule(1.0)], IDS, T0)
    decision = await ledger.reserve(charges, 0.7)
    assert decision.reservation is not None
    assert await ledger.extend(decision.reservation, 0.31) is None
    for charge in charges:
        assert await ledger.status(charge) == pytest.approx((0.0, 0.7))
    # The reservation is still live: it grows by what fits, and settles once.
    grown = await ledger.extend(decision.reservation, 0.3)
    assert grown is not None
    await ledger.settle(grown, 1.0)
    assert await ledger.status(charges[1]) == pytest.approx((1.0, 0.0))


async def test_a_settled_reservation_cannot_grow(make_ledger: MakeLedger) -> None:
    ledger = make_ledger(Seed())
    charges = charges_for([rule(1.0)], IDS, T0)
    decision = await ledger.reserve(charges, 0.2)
    assert decision.reservation is not None
    await ledger.settle(decision.reservation, 0.2)
    assert await ledger.extend(decision.reservation, 0.1) is None
    assert await ledger.status(charges[0]) == pytest.approx((0.2, 0.0))
