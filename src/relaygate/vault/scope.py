"""Who a provider credential is being resolved for: the request's tenant, environment and key.

The data plane sets the scope once it has authenticated a request; the upstream HTTP client asks
the broker for credentials in that scope when it sends the request. A context variable carries it
across the layers in between (routing, retries, providers), which know nothing of tenants.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from contextvars import ContextVar
from dataclasses import dataclass, field


@dataclass(frozen=True, slots=True)
class RequestScope:
    """The caller a credential is resolved for."""

    tenant_id: str
    environment: str
    key_id: str
    request_id: str
    # Credential values this request decrypted: error messages are scrubbed of them.
    revealed: list[str] = field(default_factory=list, compare=False, repr=False)


CURRENT: ContextVar[RequestScope | None] = ContextVar("relaygate_request_scope", default=None)


def set_scope(scope: RequestScope) -> None:
    """Make `scope` the current request's scope (for the rest of this task and its children)."""
    CURRENT.set(scope)


@contextmanager
def request_scope(scope: RequestScope) -> Iterator[None]:
    """Run a block (e.g. a background job) in `scope`."""
    token = CURRENT.set(scope)
    try:
        yield
    finally:
        CURRENT.reset(token)


def revealed_values() -> list[str]:
    """The credential values the current request holds (to scrub from messages)."""
    scope = CURRENT.get()
    return scope.revealed if scope is not None else []
