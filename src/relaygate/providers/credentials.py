"""Provider credentials that come from the vault, resolved for each request.

A provider whose `api_key` or headers are `vault:NAME` references gets them from the credential
broker in the scope of the request being sent (tenant, environment): the plaintext lives in that
request only, and the request's error messages are scrubbed of it.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Protocol

from relaygate.vault.scope import CURRENT


class Broker(Protocol):
    """Resolves a vault secret for the current request."""

    async def resolve(self, provider: str, name: str) -> str:
        """The secret's value; UpstreamError if this request may not use it."""
        ...


@dataclass(frozen=True, slots=True)
class VaultCredentials:
    """How one provider builds its auth headers from static and vault-held values."""

    provider: str
    static: Mapping[str, str]
    references: Mapping[str, str]  # 'api_key' / 'header:NAME' -> vault secret name
    broker: Broker
    auth_headers: Callable[[Mapping[str, str]], dict[str, str]]

    async def headers(self) -> dict[str, str]:
        """This request's auth headers."""
        values = dict(self.static)
        scope = CURRENT.get()
        for key, name in self.references.items():
            value = await self.broker.resolve(self.provider, name)
            values[key] = value
            if scope is not None and len(value) >= 4:
                scope.revealed.append(value)
        return self.auth_headers(values)
