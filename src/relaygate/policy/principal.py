"""The authenticated caller of one request."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

from relaygate.policy.snapshot import KeyPolicy

AuthMethod = Literal["bearer", "hmac", "jwt", "job"]


@dataclass(frozen=True, slots=True)
class Principal:
    """Who is calling: a key (or JWT issuer) and the tenant/environment it belongs to.

    `end_user` is fixed by a JWT's `sub`; for keys the request body's `user` names the end user.
    """

    key_id: str
    tenant_id: str
    environment: str
    kind: str = "tenant"
    via: AuthMethod = "bearer"
    end_user: str | None = None
    key: KeyPolicy | None = None

    @classmethod
    def of_key(cls, key: KeyPolicy, via: AuthMethod) -> Principal:
        """The principal of an API key."""
        return cls(key.key_id, key.tenant_id, key.environment, key.kind, via, None, key)
