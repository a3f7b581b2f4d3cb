"""The pace factor an admission carries to the router: the most pressed paced budget decides,
unpaced budgets cost no extra read, and a ledger that cannot say leaves routing as it is.

`admit` on the in-process ledger; the gateway around it holds only what admission reads.
"""

from __future__ import annotations

import dataclasses
import logging
from types import SimpleNamespace
from typing import Any

import pytest

from relaygate.budgets import BudgetRule, Charge, LedgerUnavailable, MemoryLedger
from relaygate.config.schema import BudgetsConfig, ModelConfig, PacingSettings, RoutingConfig
from relaygate.policy.enforce import Admission, admit
from relaygate.policy.principal import Principal
from relaygate.policy.snapshot import PolicySnapshot, TenantPolicy
from relaygate.routing.catalog import Deployment, Route
from tests.budgets.helpers import Seed, rule

# A horizon this short presses any distance from the pace line to the bound, whatever the time.
PACING = PacingSettings(gain=8, horizon=1e-6, max_scale=16)
# Soft, so that a request far past its $0.001 still gets through (and is far ahead of pace).
AHEAD = dataclasses.replace(rule(0.001, scope="tenant", subject="acme", hard=False), pace=True)
# Nothing spent of $1,000,000 a day: behind pace from the first moments of the day.
BEHIND = dataclasses.replace(rule(1e6, scope="tenant", subject="acme"), pace=True)


class WatchedLedger(MemoryLedger):
    """The in-process ledger, counting the status reads; `down` makes them fail."""

    def __init__(self, *, down: bool = False) -> None:
        super().__init__(Seed())
        self.reads: list[str] = []
        self.down = down

    async def status(self, charge: Charge) -> tuple[float, float]:
        self.reads.append(charge.rule.id)
        if self.down:
            raise LedgerUnavailable("the shared budget ledger is unreachable")
        return await super().status(charge)


async def _admit(ledger: WatchedLedger, *budgets: BudgetRule) -> Admission:
    gw: Any = SimpleNamespace(
        policy=PolicySnapshot(tenants={"acme": TenantPolicy("acme", budgets=budgets)}),
        config=SimpleNamespace(
            budgets=BudgetsConfig(reserve_output_tokens=4), routing=RoutingConfig(pacing=PACING)
        ),
        ledger=ledger,
        alerts=SimpleNamespace(soft_cap=lambda _charge: None, hard_cap=lambda _charge: None),
    )
    provider = SimpleNamespace(config=SimpleNamespace(name="sim"))
    model = ModelConfig(name="sim", output_price=1000.0)
    route = Route("fast", (Deployment(provider, model),))
    _, _, admission = await admit(
        gw,
        Principal("k1", "acme", "production"),
        route=route,
        deployments=route.deployments,
        end_user=None,
        max_output_tokens=4,
        count_prompt=lambda: 10,
        resolve=lambda _name: None,
    )
    assert admission.reservation is not None
    return admission


async def test_the_most_pressed_paced_budget_sets_the_factor() -> None:
    assert (await _admit(WatchedLedger(), AHEAD)).price_scale == 16
    assert (await _admit(WatchedLedger(), BEHIND)).price_scale == 1 / 16
    for order in ((AHEAD, BEHIND), (BEHIND, AHEAD)):
        ledger = WatchedLedger()
        assert (await _admit(ledger, *order)).price_scale == 16
        assert sorted(ledger.reads) == sorted([AHEAD.id, BEHIND.id])


async def test_unpaced_budgets_are_not_read_and_not_paced() -> None:
    ledger = WatchedLedger()
    unpaced = dataclasses.replace(AHEAD, pace=False)
    assert (await _admit(ledger, unpaced, dataclasses.replace(BEHIND, pace=False))).price_scale == 1
    assert ledger.reads == []
    # Next to a paced one, only the paced one is read.
    assert (await _admit(ledger, unpaced, BEHIND)).price_scale == 1 / 16
    assert ledger.reads == [BEHIND.id]


async def test_an_unreadable_ledger_admits_unpaced_with_a_warning(
    caplog: pytest.LogCaptureFixture,
) -> None:
    ledger = WatchedLedger(down=True)
    with caplog.at_level(logging.WARNING, logger="relaygate.policy"):
        admission = await _admit(ledger, AHEAD)
    assert admission.price_scale == 1.0
    assert ledger.reads == [AHEAD.id]
    assert any(AHEAD.id in r.getMessage() for r in caplog.records), caplog.records
