"""Try a route's deployments in order, moving on only after a retryable failure.

For streams a deployment counts as chosen once its first chunk arrived: nothing has reached the
client before that, so failing over cannot duplicate or splice an answer.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Awaitable, Callable, Sequence
from dataclasses import dataclass
from typing import TypeVar

from relaygate.errors import UpstreamError
from relaygate.providers.base import JSON
from relaygate.routing.catalog import Deployment

T = TypeVar("T")


@dataclass(slots=True)
class Attempted:
    """Which deployment answered and how many attempts it took."""

    deployment: Deployment
    attempts: int


async def first_success(
    deployments: Sequence[Deployment], call: Callable[[Deployment], Awaitable[T]]
) -> tuple[T, Attempted]:
    """The first deployment's result that does not fail retryably."""
    last: UpstreamError | None = None
    for attempt, deployment in enumerate(deployments, start=1):
        try:
            return await call(deployment), Attempted(deployment, attempt)
        except UpstreamError as exc:
            if not exc.retryable:
                raise
            last = exc
    assert last is not None
    raise last


async def open_stream(
    deployments: Sequence[Deployment], body: JSON
) -> tuple[JSON, AsyncIterator[JSON], Attempted]:
    """Start streaming from the first deployment that produces a first chunk."""

    async def start(deployment: Deployment) -> tuple[JSON, AsyncIterator[JSON]]:
        stream = aiter(deployment.provider.stream_chat(body, deployment.model))
        try:
            first = await anext(stream)
        except StopAsyncIteration:
            raise UpstreamError(
                502, f"provider {deployment.provider_name!r} sent an empty stream", retryable=True
            ) from None
        except BaseException:
            await _close(stream)
            raise
        return first, stream

    (first, stream), attempted = await first_success(deployments, start)
    return first, stream, attempted


async def _close(stream: AsyncIterator[JSON]) -> None:
    aclose = getattr(stream, "aclose", None)
    if aclose is not None:
        await aclose()
