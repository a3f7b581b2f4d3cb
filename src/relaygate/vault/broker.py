"""Resolve `vault:NAME` references for the request being served.

Each resolution decrypts the active version for the request's scope: unwrap the data key with the
KEK (a KMS call for remote KMSs), then AES-GCM. With `vault.data_key_cache_s` > 0 unwrapped data
keys are kept that long (bounded, keyed by secret version) to spare remote round trips: the
documented trade-off of keeping data keys (never secret values) in memory.

Every use is counted in the audit log with the tenant, environment, key and request id.
"""

from __future__ import annotations

import time
from collections import OrderedDict

from relaygate.audit.log import AuditLog
from relaygate.errors import CredentialError
from relaygate.vault.envelope import EnvelopeError, open_with
from relaygate.vault.kms.base import KeyEncryptionKey, KMSError
from relaygate.vault.scope import CURRENT
from relaygate.vault.snapshot import VaultSnapshot

CACHE_ENTRIES = 1024


class CredentialBroker:
    """Hands provider credentials to the upstream client, one request at a time."""

    def __init__(
        self,
        kek: KeyEncryptionKey,
        snapshot: VaultSnapshot,
        audit: AuditLog | None,
        *,
        data_key_cache_s: float = 0.0,
    ) -> None:
        self.kek = kek
        self.snapshot = snapshot
        self._audit = audit
        self._cache_s = data_key_cache_s
        self._cache: OrderedDict[tuple[str, int], tuple[float, bytes]] = OrderedDict()

    def _cached(self, secret_id: str, version: int) -> bytes | None:
        if self._cache_s <= 0:
            return None
        hit = self._cache.get((secret_id, version))
        if hit is None:
            return None
        if hit[0] < time.monotonic():
            del self._cache[(secret_id, version)]
            return None
        return hit[1]

    async def resolve(self, provider: str, name: str) -> str:
        """The value of secret `name` for the current request's scope.

        Raises CredentialError (routing may try another deployment; this one is not blamed):
        403 `credential_not_granted` when the scope has no such secret or grant, 503
        `credential_unavailable` when it does not decrypt (tampered, retired KEK version, KMS
        unreachable). Messages name the secret, never its value or key material.
        """
        scope = CURRENT.get()
        if scope is None:
            raise CredentialError(
                403,
                f"provider {provider!r} needs a vault credential, and this call has no tenant",
                code="credential_not_granted",
            )
        found = self.snapshot.find(scope.tenant_id, scope.environment, name)
        if found is None:
            raise CredentialError(
                403,
                f"provider {provider!r} needs credential {name!r}, which is not granted to"
                f" environment {scope.environment!r} of this tenant",
                code="credential_not_granted",
            )
        address, sealed = found.address, found.sealed
        aad = address.associated_data()
        try:
            data_key = self._cached(found.secret_id, address.version)
            if data_key is None:
                data_key = await self.kek.unwrap(sealed.wrapped, aad)
                if self._cache_s > 0:
                    self._cache[(found.secret_id, address.version)] = (
                        time.monotonic() + self._cache_s,
                        data_key,
                    )
                    while len(self._cache) > CACHE_ENTRIES:
                        self._cache.popitem(last=False)
            value = open_with(data_key, address, sealed).decode()
        except (EnvelopeError, KMSError, UnicodeDecodeError) as exc:
            raise CredentialError(
                503,
                f"credential {name!r} for provider {provider!r} cannot be decrypted"
                f" ({type(exc).__name__})",
                code="credential_unavailable",
            ) from None
        if self._audit is not None:
            self._audit.note(
                f"key:{scope.key_id}",
                "vault.use",
                f"secret:{found.secret_id}@v{address.version}",
                tenant_id=scope.tenant_id,
                request_id=scope.request_id,
                subject=f"{scope.environment}/{provider}",
            )
        return value

    def clear_cache(self) -> None:
        """Forget every cached data key (after a KEK rotation or a retirement)."""
        self._cache.clear()
