"""Keep a stream inside its budget reservation, extending it as the answer grows.

A reservation covers the prompt and the output tokens reserved at admission. If a stream
produces more (a reservation capped by `budgets.reserve_output_tokens`, or a provider that
ignores max_tokens), the guard extends the reservation a step at a time; when a hard cap
refuses the extension, the stream must end.
"""

from __future__ import annotations

from relaygate.policy.enforce import Admission
from relaygate.routing.catalog import Deployment
from relaygate.state import Gateway
from relaygate.usage.cost import Usage, cost_usd

STEP_TOKENS = 32


class StreamBudgetGuard:
    """Counts streamed output pieces (about one token each) against the reservation."""

    def __init__(self, gw: Gateway, admission: Admission, deployment: Deployment) -> None:
        self._gw = gw
        self._admission = admission
        self._step_cost = cost_usd(deployment.model, Usage(completion_tokens=STEP_TOKENS))
        self._allowed = admission.reserved_output_tokens
        self._seen = 0

    async def allow(self, chunk: dict[str, object]) -> bool:
        """Count `chunk`; False once the stream must stop because a hard cap refuses more."""
        choices = chunk.get("choices")
        if not isinstance(choices, list) or not choices:
            return True
        self._seen += 1
        if self._seen <= self._allowed:
            return True
        reservation = self._admission.reservation
        if reservation is None:
            return True
        grown = await self._gw.ledger.extend(reservation, self._step_cost)
        if grown is None:
            return False
        self._admission.reservation = grown
        self._allowed += STEP_TOKENS
        return True
