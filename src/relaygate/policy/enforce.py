"""Per-request policy: model allowlists, token caps, rate limits and spend caps.

Runs after authentication and routing, before the upstream call. Everything here reads the
in-memory snapshot; the limiter and the ledger are in-process or one Redis round trip each.
What was taken (a limiter lease, a budget reservation) is given back by `settle` when the
request ends, however it ends.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

from relaygate.budgets import (
    BudgetDecision,
    Charge,
    LedgerUnavailable,
    Reservation,
    charges_for,
)
from relaygate.budgets import refusal_message as budget_refusal
from relaygate.errors import GatewayError, bad_request
from relaygate.limits import Lease, LimiterUnavailable, Subject
from relaygate.limits import refusal_message as limit_refusal
from relaygate.policy.principal import Principal
from relaygate.policy.snapshot import KeyPolicy, TenantPolicy
from relaygate.routing.catalog import Deployment, Route
from relaygate.routing.pacing import price_scale
from relaygate.state import Gateway
from relaygate.usage.cost import Usage, cost_usd

log = logging.getLogger("relaygate.policy")

Resolver = Callable[[str], tuple[Route, Sequence[Deployment]] | None]


@dataclass(slots=True)
class Admission:
    """What one request took from the limits and budgets, to be settled when it ends.

    `price_scale` is the factor for the price weight when the request is routed: above 1 while
    a paced budget it counts against runs ahead of its pace, below 1 while it runs behind.
    """

    lease: Lease | None = None
    reservation: Reservation | None = None
    headers: dict[str, str] = field(default_factory=dict)
    prompt_tokens: int | None = None
    reserved_output_tokens: int = 0
    downgraded_from: str | None = None
    price_scale: float = 1.0
    settled: bool = False


def allowed_models(tenant: TenantPolicy, key: KeyPolicy | None) -> frozenset[str] | None:
    """The names the caller may use (None = every listed model)."""
    allowed = tenant.allowed_models
    if key is not None and key.allowed_models is not None:
        allowed = key.allowed_models if allowed is None else allowed & key.allowed_models
    return allowed


def _requested_max_tokens(body: dict[str, Any]) -> tuple[str, int | None]:
    for name in ("max_completion_tokens", "max_tokens"):
        value = body.get(name)
        if isinstance(value, int) and not isinstance(value, bool):
            return name, value
    return "max_tokens", None


def apply_token_cap(body: dict[str, Any], key: KeyPolicy | None) -> int | None:
    """Enforce the key's max tokens per request; a request without a limit gets the key's."""
    name, requested = _requested_max_tokens(body)
    cap = key.max_tokens if key is not None else None
    if cap is None:
        return requested
    if requested is None:
        body["max_tokens"] = cap
        return cap
    if requested > cap:
        raise bad_request(
            f"'{name}' is {requested}, above this key's limit of {cap} tokens per request",
            param=name,
            code="max_tokens_exceeded",
        )
    return requested


def subjects_for(principal: Principal, tenant: TenantPolicy, end_user: str | None) -> list[Subject]:
    """The limited subjects a request counts against: tenant, key, end user."""
    subjects = []
    if tenant.tenant_limit is not None:
        subjects.append(Subject("tenant", principal.tenant_id, tenant.tenant_limit))
    key_limit = tenant.key_limits.get(principal.key_id)
    if key_limit is not None:
        subjects.append(Subject("key", principal.key_id, key_limit))
    user_limit = tenant.user_limit(end_user)
    if user_limit is not None:
        subjects.append(Subject("user", f"{principal.tenant_id}/{end_user}", user_limit))
    return subjects


def _output_bound(deployment: Deployment, max_out: int | None) -> int:
    limit = deployment.model.max_output_tokens
    return limit if max_out is None else min(max_out, limit)


def max_cost(deployments: Sequence[Deployment], prompt: int, max_out: int | None) -> float:
    """The most `prompt` plus `max_out` output tokens can cost on any of `deployments`."""
    return max(
        cost_usd(
            d.model,
            Usage(
                prompt_tokens=prompt,
                completion_tokens=_output_bound(d, max_out),
            ),
        )
        for d in deployments
    )


async def admit(
    gw: Gateway,
    principal: Principal,
    *,
    route: Route,
    deployments: Sequence[Deployment],
    end_user: str | None,
    max_output_tokens: int | None,
    count_prompt: Callable[[], int],
    resolve: Resolver,
) -> tuple[Route, Sequence[Deployment], Admission]:
    """Check limits and budgets for one request; the route may change (soft-cap downgrade)."""
    tenant = gw.policy.tenant(principal.tenant_id)
    subjects = subjects_for(principal, tenant, end_user)
    now = datetime.now(UTC)
    charges = (
        charges_for(
            tenant.budgets,
            {"tenant": principal.tenant_id, "key": principal.key_id, "user": end_user},
            now,
        )
        if tenant.budgets
        else []
    )
    admission = Admission()
    if not subjects and not charges:
        return route, deployments, admission
    counts_tokens = bool(charges) or any(s.limit.tpm for s in subjects)
    prompt = count_prompt() if counts_tokens else 0
    if counts_tokens:
        admission.prompt_tokens = prompt
    if subjects:
        try:
            decision = await gw.limiter.acquire(subjects, prompt)
        except LimiterUnavailable:
            raise GatewayError(
                503, "rate limiting is unavailable; try again shortly", code="limiter_unavailable"
            ) from None
        admission.headers = decision.headers
        if not decision.allowed:
            raise GatewayError(
                429, limit_refusal(decision), code="rate_limit_exceeded", headers=decision.headers
            )
        admission.lease = decision.lease
    if charges:
        cap = gw.config.budgets.reserve_output_tokens
        if cap is not None:
            max_output_tokens = min(max_output_tokens or cap, cap)
        admission.reserved_output_tokens = max(
            _output_bound(d, max_output_tokens) for d in deployments
        )
        try:
            verdict = await gw.ledger.reserve(
                charges, max_cost(deployments, prompt, max_output_tokens)
            )
        except LedgerUnavailable:
            await release(gw, admission)
            raise GatewayError(
                503, "spend tracking is unavailable; try again shortly", code="budget_unavailable"
            ) from None
        if not verdict.allowed:
            await release(gw, admission)
            assert verdict.refused_by is not None
            gw.alerts.hard_cap(verdict.refused_by)
            raise GatewayError(
                429,
                budget_refusal(verdict.refused_by, verdict.shortfall),
                code="budget_exceeded",
                type="insufficient_quota",
                headers=admission.headers,
            )
        admission.reservation = verdict.reservation
        route, deployments = _soft_caps(gw, verdict, route, deployments, admission, resolve)
        paced = [c for c in charges if c.rule.pace]
        if paced:
            admission.price_scale = await _pace(gw, paced, now)
    return route, deployments, admission


async def _pace(gw: Gateway, charges: Sequence[Charge], now: datetime) -> float:
    """The price-weight factor of the most pressed paced budget (spent and reserved, this
    request's reservation included, against the share of its period gone); 1.0 if the ledger
    cannot say: pacing is advice, and the request is already admitted."""
    scale = 0.0
    for charge in charges:
        try:
            spent, reserved = await gw.ledger.status(charge)
        except LedgerUnavailable:
            log.warning("budget %s: spend unavailable, not paced this request", charge.rule.id)
            return 1.0
        elapsed = (now - charge.period_start) / (charge.period_end - charge.period_start)
        found = price_scale(
            spent + reserved, charge.rule.limit_usd, elapsed, gw.config.routing.pacing
        )
        scale = max(scale, found)
    return scale


def _soft_caps(
    gw: Gateway,
    verdict: BudgetDecision,
    route: Route,
    deployments: Sequence[Deployment],
    admission: Admission,
    resolve: Resolver,
) -> tuple[Route, Sequence[Deployment]]:
    for charge in verdict.soft_exceeded:
        gw.alerts.soft_cap(charge)
        target = charge.rule.downgrade_to
        if target and admission.downgraded_from is None and target != route.name:
            found = resolve(target)
            if found is None:
                log.warning(
                    "budget %s: downgrade route %r cannot serve this request",
                    charge.rule.id,
                    target,
                )
                continue
            admission.downgraded_from = route.name
            route, deployments = found
    return route, deployments


async def settle(gw: Gateway, admission: Admission, usage: Usage, cost: float) -> None:
    """Give back the lease (tokens reconciled with actual use) and settle the reservation."""
    if admission.settled:
        return
    admission.settled = True
    try:
        if admission.lease is not None:
            await gw.limiter.settle(admission.lease, usage.prompt_tokens + usage.completion_tokens)
        if admission.reservation is not None:
            await gw.ledger.settle(admission.reservation, cost)
    except Exception as exc:
        log.warning("settling limits/budgets failed: %s", type(exc).__name__)


async def release(gw: Gateway, admission: Admission) -> None:
    """Give back everything taken (the request never reached a provider)."""
    await settle(gw, admission, Usage(), 0.0)
