"""The vault as the request path sees it: encrypted versions and grants, held in memory.

Reloaded with the policy snapshot whenever an admin write bumps the policy version. It holds only
ciphertexts and wrapped data keys; plaintext exists only inside a request that uses a credential.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from relaygate.vault.envelope import OPERATOR, SealedSecret, SecretAddress


@dataclass(frozen=True, slots=True)
class ActiveSecret:
    """A secret's active version, ready to decrypt."""

    secret_id: str
    address: SecretAddress
    sealed: SealedSecret


@dataclass(frozen=True, slots=True)
class VaultSnapshot:
    """Active versions by owner and name, and the grants of operator secrets."""

    owned: dict[tuple[str, str, str], ActiveSecret] = field(default_factory=dict)
    shared: dict[str, ActiveSecret] = field(default_factory=dict)
    grants: frozenset[tuple[str, str, str]] = frozenset()  # (secret id, tenant, environment|*)

    def find(self, tenant_id: str, environment: str, name: str) -> ActiveSecret | None:
        """The secret `name` this tenant environment may use: its own, else a granted one.

        Least privilege: a tenant's secret belongs to one environment, so a staging key never
        reaches a production secret; an operator secret needs a grant for the tenant and either
        that environment or every environment ('*').
        """
        own = self.owned.get((tenant_id, environment, name))
        if own is not None:
            return own
        shared = self.shared.get(name)
        if shared is None:
            return None
        sid = shared.secret_id
        if (sid, tenant_id, environment) in self.grants or (
            sid,
            tenant_id,
            OPERATOR,
        ) in self.grants:
            return shared
        return None
