"""Load the policy snapshot from the database (all of it, in one read transaction)."""

from __future__ import annotations

import logging
from collections import defaultdict
from datetime import UTC, datetime
from typing import Any

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from relaygate.auth import signing_secrets
from relaygate.auth.jwt_tokens import JwtIssuer, load_issuer_key
from relaygate.auth.signing_secrets import SigningSecret
from relaygate.budgets import BudgetRule
from relaygate.limits import Limit
from relaygate.policy.snapshot import KeyPolicy, PolicySnapshot, TenantPolicy
from relaygate.store.policy_version import bump_policy_version, policy_version
from relaygate.store.tables import (
    ApiKey,
    BudgetPolicy,
    JwtIssuerRecord,
    LimitPolicy,
    PolicyVersion,
    Tenant,
)
from relaygate.vault.sealer import Sealer, SealError

log = logging.getLogger("relaygate.policy")

__all__ = ["bump_policy_version", "load_snapshot", "policy_version"]


def _utc(value: datetime | None) -> datetime | None:
    if value is not None and value.tzinfo is None:
        return value.replace(tzinfo=UTC)
    return value


def _key_policy(row: ApiKey, sealer: Sealer) -> KeyPolicy:
    secrets: tuple[bytes, ...] = ()
    vault_secrets: tuple[SigningSecret, ...] = ()
    if row.signing_secret:
        try:
            opened = sealer.open(row.signing_secret, f"api_keys/{row.id}/signing")
            if row.kind == "admin":
                vault_secrets = signing_secrets.parse(opened)
            else:
                secrets = (opened,)
        except (SealError, ValueError, KeyError, TypeError):
            log.error("key %s: its signing secret does not open with this master key", row.id)
    return KeyPolicy(
        key_id=row.id,
        key_hash=row.key_hash,
        tenant_id=row.tenant_id or "",
        environment=row.environment,
        kind=row.kind,
        expires_at=_utc(row.expires_at),
        allowed_models=frozenset(row.allowed_models) if row.allowed_models is not None else None,
        max_tokens=row.max_tokens,
        max_body_bytes=row.max_body_bytes,
        require_signature=row.require_signature,
        signing_secrets=secrets,
        vault_secrets=vault_secrets,
    )


def _issuer(row: JwtIssuerRecord, sealer: Sealer) -> JwtIssuer | None:
    keys: dict[str, Any] = {}
    try:
        for kid, material in row.keys.items():
            if row.algorithm == "HS256":
                raw: str | bytes = sealer.open(str(material), f"jwt_issuers/{row.id}/{kid}")
            else:
                raw = str(material)
            keys[kid] = load_issuer_key(row.algorithm, raw)
    except (SealError, ValueError) as exc:
        log.error("JWT issuer %s is unusable: %s", row.id, type(exc).__name__)
        return None
    return JwtIssuer(
        issuer=row.issuer,
        audience=row.audience,
        algorithm=row.algorithm,  # type: ignore[arg-type]
        keys=keys,
        tenant_id=row.tenant_id,
        environment=row.environment,
        issuer_id=row.id,
    )


def _limit(row: LimitPolicy) -> Limit:
    return Limit(rpm=row.rpm, tpm=row.tpm, concurrency=row.concurrency)


async def load_snapshot(
    sessions: async_sessionmaker[AsyncSession], sealer: Sealer
) -> PolicySnapshot:
    """Read every active key, tenant policy and issuer."""
    async with sessions() as session:
        version_row = await session.get(PolicyVersion, 1)
        keys = (await session.execute(select(ApiKey).where(ApiKey.revoked_at.is_(None)))).scalars()
        key_policies = [_key_policy(row, sealer) for row in keys]
        tenants = (await session.execute(select(Tenant))).scalars().all()
        limits = (await session.execute(select(LimitPolicy))).scalars().all()
        budgets = (await session.execute(select(BudgetPolicy))).scalars().all()
        issuer_rows = (await session.execute(select(JwtIssuerRecord))).scalars().all()
    by_tenant_limits: dict[str, list[LimitPolicy]] = defaultdict(list)
    for limit in limits:
        by_tenant_limits[limit.tenant_id].append(limit)
    by_tenant_budgets: dict[str, list[BudgetRule]] = defaultdict(list)
    for budget in budgets:
        by_tenant_budgets[budget.tenant_id].append(
            BudgetRule(
                id=budget.id,
                tenant_id=budget.tenant_id,
                scope=budget.scope,  # type: ignore[arg-type]
                subject=budget.subject,
                period=budget.period,  # type: ignore[arg-type]
                limit_usd=budget.limit_usd,
                hard=budget.hard,
                downgrade_to=budget.downgrade_to,
                alert=budget.alert,
                pace=budget.pace,
            )
        )
    tenant_policies: dict[str, TenantPolicy] = {}
    for tenant in tenants:
        rows = by_tenant_limits.get(tenant.id, [])
        tenant_policies[tenant.id] = TenantPolicy(
            tenant_id=tenant.id,
            allowed_models=frozenset(tenant.allowed_models)
            if tenant.allowed_models is not None
            else None,
            tenant_limit=next((_limit(r) for r in rows if r.scope == "tenant"), None),
            key_limits={r.subject: _limit(r) for r in rows if r.scope == "key"},
            user_limits={r.subject: _limit(r) for r in rows if r.scope == "user"},
            budgets=tuple(by_tenant_budgets.get(tenant.id, ())),
        )
    issuers = {}
    for row in issuer_rows:
        issuer = _issuer(row, sealer)
        if issuer is not None:
            issuers[issuer.issuer] = issuer
    return PolicySnapshot(
        version=version_row.version if version_row is not None else 0,
        keys_by_hash={k.key_hash: k for k in key_policies},
        keys_by_id={k.key_id: k for k in key_policies},
        tenants=tenant_policies,
        issuers=issuers,
    )
