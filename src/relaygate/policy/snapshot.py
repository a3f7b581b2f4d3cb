"""The in-memory policy: keys, tenants, limits, budgets and JWT issuers, as of one database version.

The request path reads only this snapshot. A background task reloads it whenever the database's
policy version changes (checked every `server.policy_refresh_s`), and swaps it in whole, so readers
never see half an update and never wait on the database.
"""

from __future__ import annotations

import hmac
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import datetime
from typing import TYPE_CHECKING

from relaygate.auth.jwt_tokens import JwtIssuer
from relaygate.auth.keys import hash_key
from relaygate.auth.signing_secrets import SigningSecret
from relaygate.budgets import BudgetRule
from relaygate.limits import Limit
from relaygate.policy.memo import SnapshotMemo

if TYPE_CHECKING:  # for annotations only: principal.py imports this module
    from relaygate.config.schema import Capability
    from relaygate.policy.principal import Principal
    from relaygate.routing.catalog import Deployment, Route


@dataclass(frozen=True, slots=True)
class KeyPolicy:
    """One active (unrevoked) key and its scopes."""

    key_id: str
    key_hash: str
    tenant_id: str
    environment: str
    kind: str
    expires_at: datetime | None = None
    allowed_models: frozenset[str] | None = None
    max_tokens: int | None = None
    max_body_bytes: int | None = None
    require_signature: bool = False
    signing_secrets: tuple[bytes, ...] = ()
    # An admin key's vault signing secrets (current, in overlap, recently replaced).
    vault_secrets: tuple[SigningSecret, ...] = ()
    # `expires_at` as a Unix time, so the check on every request compares two floats.
    expires_ts: float | None = field(init=False, repr=False, compare=False, default=None)

    def __post_init__(self) -> None:
        if self.expires_at is not None:
            object.__setattr__(self, "expires_ts", self.expires_at.timestamp())

    def expired(self, now: float) -> bool:
        """True once the key's expiry has passed (`now` as from `time.time()`)."""
        expires = self.expires_ts
        return expires is not None and now >= expires


@dataclass(frozen=True, slots=True)
class TenantPolicy:
    """A tenant's model allowlist, limits and budgets."""

    tenant_id: str
    allowed_models: frozenset[str] | None = None
    tenant_limit: Limit | None = None
    key_limits: Mapping[str, Limit] = field(default_factory=dict)
    user_limits: Mapping[str, Limit] = field(default_factory=dict)
    budgets: tuple[BudgetRule, ...] = ()

    def user_limit(self, end_user: str | None) -> Limit | None:
        """The limit for `end_user`: their own, else the tenant's every-user ('*') limit."""
        if end_user is None:
            return None
        return self.user_limits.get(end_user) or self.user_limits.get("*")


@dataclass(frozen=True, slots=True)
class PolicySnapshot:
    """Everything the request path needs to authorize a caller."""

    version: int = -1
    keys_by_hash: Mapping[str, KeyPolicy] = field(default_factory=dict)
    keys_by_id: Mapping[str, KeyPolicy] = field(default_factory=dict)
    tenants: Mapping[str, TenantPolicy] = field(default_factory=dict)
    issuers: Mapping[str, JwtIssuer] = field(default_factory=dict)
    # Worked out from this snapshot on first use (policy/memo.py); new with every load.
    # Principal per (key id, how it authenticated):
    principals: SnapshotMemo[tuple[str, str], Principal] = field(
        default_factory=SnapshotMemo, compare=False, repr=False
    )
    # Route and deployments per (tenant, key id, model name, capabilities needed):
    routes: SnapshotMemo[
        tuple[str, str, str, frozenset[Capability]], tuple[Route, tuple[Deployment, ...]]
    ] = field(default_factory=SnapshotMemo, compare=False, repr=False)

    def key_for(self, presented: str) -> KeyPolicy | None:
        """The active key whose hash matches `presented` (constant-time compare of the hash)."""
        digest = hash_key(presented)
        key = self.keys_by_hash.get(digest)
        if key is None or not hmac.compare_digest(key.key_hash, digest):
            return None
        return key

    def tenant(self, tenant_id: str) -> TenantPolicy:
        """The tenant's policy (an empty one for a tenant without any)."""
        return self.tenants.get(tenant_id) or TenantPolicy(tenant_id)

    def signing_secrets(self, key_id: str) -> tuple[bytes, ...]:
        """The HMAC signing secrets of an active tenant key (empty when unknown)."""
        key = self.keys_by_id.get(key_id)
        return key.signing_secrets if key is not None and key.kind == "tenant" else ()

    def admin_key(self, key_id: str) -> KeyPolicy | None:
        """The active admin key with this id (the vault API takes only signed requests)."""
        key = self.keys_by_id.get(key_id)
        return key if key is not None and key.kind == "admin" else None
