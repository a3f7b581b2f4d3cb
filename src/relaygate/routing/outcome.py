"""What one attempt at a deployment says about that deployment: the only place that decides.

Every attempt the router makes ends in exactly one `Outcome`. Only two of them are evidence
about the deployment's health and feed its latency statistics, error rate and circuit breaker
(local and Redis-shared): a success, and a provider fault. Everything else is about the caller,
its tenant or the gateway itself, and never counts for or against the deployment, so no tenant
can open (or hold closed) a circuit that every tenant shares.

| outcome          | examples                                                     | counts | next |
|------------------|--------------------------------------------------------------|--------|------|
| SUCCESS          | an answer, or a stream's first chunk                         | yes    | -    |
| PROVIDER_FAULT   | 5xx, timeout, connection error, 429 on the operator's key,   | yes    | yes  |
|                  | 401/403 on the operator's key, garbage instead of an answer  |        |      |
| REQUEST_FAULT    | 400/404/413/422 for this request's content, context too long | no     | no   |
| CREDENTIAL_FAULT | vault credential missing, not granted, undecryptable, or     | no     | yes  |
|                  | refused by the provider (401/403/429 on a tenant's key)      |        |      |
| NOT_JUDGED       | the client left (cancelled), a gateway bug                   | no     | no   |

"next" says whether another deployment may be tried. A request fault goes straight back to the
client: another deployment would refuse the same content. A credential fault moves on to the
next deployment (whose credential the tenant may hold) without retrying the same one, without
backoff and without drawing on the shared retry budget.
"""

from __future__ import annotations

import asyncio
import enum

from relaygate.errors import CredentialError, GatewayError, UpstreamError


class Outcome(enum.Enum):
    """How an attempt ended, as far as the deployment's health is concerned."""

    SUCCESS = "success"
    PROVIDER_FAULT = "provider_fault"
    REQUEST_FAULT = "request_fault"
    CREDENTIAL_FAULT = "credential_fault"
    NOT_JUDGED = "not_judged"

    @property
    def counts(self) -> bool:
        """Whether this outcome feeds the deployment's statistics and circuit breaker."""
        return self in (Outcome.SUCCESS, Outcome.PROVIDER_FAULT)

    @property
    def tries_another(self) -> bool:
        """Whether the request may go on to another deployment after this outcome."""
        return self in (Outcome.PROVIDER_FAULT, Outcome.CREDENTIAL_FAULT)


def classify(exc: BaseException) -> Outcome:
    """The outcome of an attempt that raised `exc`."""
    if isinstance(exc, CredentialError):
        return Outcome.CREDENTIAL_FAULT
    if isinstance(exc, TimeoutError):
        return Outcome.PROVIDER_FAULT
    if isinstance(exc, UpstreamError):
        # A provider that is rate limiting, timing out or failing, or that sent something that
        # is not an answer (nothing has reached the client yet, so another deployment is safe).
        if exc.retryable or exc.status >= 500 or exc.status in (408, 429):
            return Outcome.PROVIDER_FAULT
        return Outcome.REQUEST_FAULT
    if isinstance(exc, GatewayError) and exc.status < 500:
        return Outcome.REQUEST_FAULT  # a provider refused to translate this request (400)
    if isinstance(exc, asyncio.CancelledError):
        return Outcome.NOT_JUDGED
    return Outcome.NOT_JUDGED  # a gateway bug: answered as a 500, says nothing of the provider
