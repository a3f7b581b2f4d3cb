"""POST /v1/chat/completions: authenticate, validate, route, call, stream, account."""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import AsyncGenerator, AsyncIterator, Awaitable, Callable
from typing import Any

import orjson
from starlette.requests import Request
from starlette.responses import Response

from relaygate.api import streams
from relaygate.api.accounting import (
    CLIENT_CLOSED,
    RequestLedger,
    admit,
    call_routed,
    cost_cap,
    resolve,
)
from relaygate.api.disconnect import ClientDisconnected, unless_disconnected
from relaygate.api.sse import HEARTBEAT, SSEResponse
from relaygate.api.validation import ChatSpec, validate_chat
from relaygate.errors import GatewayError, UpstreamError, bad_request
from relaygate.policy.enforce import apply_token_cap
from relaygate.policy.stream_guard import StreamBudgetGuard
from relaygate.providers.base import JSON
from relaygate.routing.catalog import Deployment
from relaygate.routing.classifier import classify
from relaygate.routing.router import Attempted
from relaygate.state import Gateway
from relaygate.usage.cost import Usage
from relaygate.usage.meter import completion_text

DONE = b"data: [DONE]\n\n"
log = logging.getLogger("relaygate.api")


def _frame(payload: Any) -> bytes:
    return b"data: " + orjson.dumps(payload) + b"\n\n"


async def chat_completions(request: Request) -> Response | SSEResponse:
    """The OpenAI chat completions endpoint."""
    gw, principal, body = await admit(request)
    spec = validate_chat(body, gw.config.bounds)
    route, deployments = resolve(gw, principal, spec.model, spec.needs)
    complexity = None
    if route.classify is not None:
        # Complexity routing: the alias is allowed; the route it picks is the operator's choice.
        complexity, _ = classify(body.get("messages") or (), route.classify.threshold)
        chosen = route.classify.complex if complexity == "complex" else route.classify.simple
        target = gw.catalog.resolve(chosen)
        assert target is not None  # checked when the configuration was loaded
        route, deployments = target, target.supporting(spec.needs)
        if not deployments:
            raise bad_request(
                f"model '{spec.model}' chose '{chosen}' for this prompt, which does not support"
                f" {', '.join(sorted(spec.needs - route.capabilities))}",
                param="model",
                code="unsupported_capability",
            )
    max_output_tokens = apply_token_cap(body, principal.key)
    cap = cost_cap(request)
    ledger = RequestLedger.start(
        request,
        gw,
        principal,
        endpoint="chat",
        route=spec.model,
        end_user=spec.end_user,
        stream=spec.stream,
    )
    ledger.complexity = complexity
    count_prompt = _prompt_counter(gw, body)
    deployments = await ledger.enforce(
        principal, route, deployments, spec.needs, max_output_tokens, count_prompt
    )
    ledger.route_plan(route, deployments, max_output_tokens, count_prompt, _size_hint(body), cap)
    if streams.wants_resumable(request):
        if not spec.stream:
            raise bad_request(
                "x-relaygate-resumable applies to streaming requests (stream: true)",
                param=streams.RESUMABLE_HEADER,
            )
        return await _resumable(gw, body, spec, ledger)
    if spec.stream:
        return await _stream(request, gw, body, spec, ledger)
    return await _complete(request, gw, body, ledger)


def _size_hint(body: JSON) -> int:
    """A cheap prompt-size estimate (characters / 4) for routes that need no exact count."""
    return len(orjson.dumps(body.get("messages") or ())) // 4


def _prompt_counter(gw: Gateway, body: JSON) -> Callable[[], int]:
    """Prompt tokens of `body`, counted only if a provider does not report them."""
    return lambda: gw.counter.count_messages(body.get("messages") or [], body.get("tools"))


async def _complete(request: Request, gw: Gateway, body: JSON, ledger: RequestLedger) -> Response:
    async def call(deployment: Deployment, timeout_s: float) -> JSON:
        return await deployment.provider.chat(body, deployment.model, timeout_s)

    prompt_tokens = _prompt_counter(gw, body)
    result = await call_routed(request, ledger, call, lambda: Usage(prompt_tokens=prompt_tokens()))
    if result is None:
        return Response(status_code=CLIENT_CLOSED)
    if not result.get("usage"):
        completion = gw.counter.count_text(completion_text(result))
        result["usage"] = Usage(prompt_tokens(), completion).to_openai()
    return ledger.answer(result)


async def _stream(
    request: Request, gw: Gateway, body: JSON, spec: ChatSpec, ledger: RequestLedger
) -> Response | SSEResponse:
    # Failover happens before the first data frame: the client never sees a spliced answer.
    heartbeat = gw.config.server.heartbeat_interval_s
    assert ledger.plan is not None
    opening = asyncio.ensure_future(_open_stream(gw, ledger, body))
    try:
        await unless_disconnected(
            request.scope, request.receive, asyncio.wait((opening,), timeout=heartbeat)
        )
    except ClientDisconnected:
        opening.cancel()
        await asyncio.gather(opening, return_exceptions=True)
        ledger.finish(Usage(prompt_tokens=_prompt_counter(gw, body)()), CLIENT_CLOSED, "cancelled")
        return Response(status_code=CLIENT_CLOSED)
    if not opening.done():
        # No first chunk within a heartbeat interval (a long time to first token): start the
        # response now so heartbeats keep the connection alive while the stream opens.
        return SSEResponse(
            _late_frames(gw, body, spec, opening, ledger),
            heartbeat_interval=heartbeat,
            headers=ledger.headers(),
        )
    try:
        first, chunks, ledger.attempted = opening.result()
    except GatewayError as exc:
        ledger.finish(Usage(), exc.status, "upstream_error")
        exc.headers.update(ledger.headers())
        raise
    return SSEResponse(
        _frames(gw, body, spec, first, chunks, ledger),
        heartbeat_interval=gw.config.server.heartbeat_interval_s,
        headers=ledger.headers(),
    )


async def _resumable(gw: Gateway, body: JSON, spec: ChatSpec, ledger: RequestLedger) -> SSEResponse:
    """A stream that keeps generating without its client, its events kept for resuming."""
    failures: list[GatewayError] = []

    async def produce(append: Callable[[bytes], Awaitable[bool]], opened: asyncio.Event) -> None:
        try:
            first, chunks, ledger.attempted = await _open_stream(gw, ledger, body)
        except Exception as exc:
            error = exc if isinstance(exc, GatewayError) else _internal_error(ledger, exc)
            ledger.finish(Usage(), error.status, "upstream_error")
            failures.append(error)
            await append(_frame(error.body()))
            return
        finally:
            opened.set()
        frames = _frames(gw, body, spec, first, chunks, ledger)
        try:
            async for frame in frames:
                if not await append(frame):
                    break  # DELETE /v1/streams/{id}: the usage so far is recorded
        finally:
            await frames.aclose()

    stream_id, opened = await streams.start(gw, ledger.principal.tenant_id, produce)
    # Like a plain stream, the headers name the deployment when it answers within a heartbeat.
    with contextlib.suppress(TimeoutError):
        await asyncio.wait_for(opened.wait(), gw.config.server.heartbeat_interval_s)
    failure = failures[0] if failures and opened.is_set() else None
    return streams.response(gw, stream_id, ledger.headers(), failure)


async def _open_stream(
    gw: Gateway, ledger: RequestLedger, body: JSON
) -> tuple[JSON, AsyncIterator[JSON], Attempted]:
    """Open a stream through the router: an attempt succeeds once its first chunk arrives."""

    async def start(deployment: Deployment) -> tuple[JSON, AsyncIterator[JSON]]:
        stream = aiter(deployment.provider.stream_chat(body, deployment.model))
        try:
            first = await anext(stream)
        except StopAsyncIteration:
            raise UpstreamError(
                502, f"provider {deployment.provider_name!r} sent an empty stream", retryable=True
            ) from None
        except BaseException:
            aclose = getattr(stream, "aclose", None)
            if aclose is not None:
                await aclose()
            raise
        return first, stream

    assert ledger.plan is not None
    (first, stream), attempted = await gw.router.run(
        ledger.plan, start, ledger.deadline, ledger.request_id
    )
    return first, stream, attempted


async def _late_frames(
    gw: Gateway,
    body: JSON,
    spec: ChatSpec,
    opening: asyncio.Future[tuple[JSON, AsyncIterator[JSON], Attempted]],
    ledger: RequestLedger,
) -> AsyncIterator[bytes]:
    """Frames of a stream whose first chunk is still awaited: errors until then become events."""
    yield HEARTBEAT  # already idle for one interval
    try:
        first, chunks, ledger.attempted = await opening
    except Exception as exc:
        # The response has started (200, heartbeats): every failure becomes an error event.
        error = exc if isinstance(exc, GatewayError) else _internal_error(ledger, exc)
        ledger.finish(Usage(), error.status, "upstream_error")
        yield _frame(error.body())
        return
    except BaseException:
        # The client left: stop opening, or close the stream that has just opened.
        if not opening.cancel() and not opening.cancelled() and opening.exception() is None:
            aclose = getattr(opening.result()[1], "aclose", None)
            if aclose is not None:
                await aclose()
        ledger.finish(Usage(prompt_tokens=_prompt_counter(gw, body)()), CLIENT_CLOSED, "cancelled")
        raise
    async for frame in _frames(gw, body, spec, first, chunks, ledger):
        yield frame


async def _frames(
    gw: Gateway,
    body: JSON,
    spec: ChatSpec,
    first: JSON,
    chunks: AsyncIterator[JSON],
    ledger: RequestLedger,
) -> AsyncGenerator[bytes, None]:
    meter = ledger.meter
    outcome, status = "cancelled", CLIENT_CLOSED
    guard = (
        StreamBudgetGuard(gw, ledger.admission, ledger.attempted.deployment)
        if ledger.admission.reservation is not None and ledger.attempted is not None
        else None
    )
    try:
        async for chunk in _prepend(first, chunks):
            if guard is not None and not await guard.allow(chunk):
                outcome, status = "budget_exceeded", 200
                break
            meter.observe_chunk(chunk)
            if chunk.get("usage") is not None and not spec.include_usage:
                if not chunk.get("choices"):
                    continue
                chunk = {k: v for k, v in chunk.items() if k != "usage"}
            yield _frame(chunk)
        if outcome == "budget_exceeded":
            if gw.config.budgets.stream_overrun == "error":
                yield _frame(_budget_cut().body())
                return
            yield _frame(_chunk_like(first, [{"index": 0, "delta": {}, "finish_reason": "length"}]))
        if spec.include_usage and meter.reported is None:
            usage = meter.usage(_prompt_counter(gw, body))
            yield _frame({**_chunk_like(first, []), "usage": usage.to_openai()})
        yield DONE
        if outcome != "budget_exceeded":
            outcome, status = "ok", 200
    except GatewayError as exc:
        # Ends the stream with an error event and no [DONE]: it never looks like a normal finish.
        outcome, status = "upstream_error", exc.status
        yield _frame(exc.body())
    except Exception as exc:
        # A bug (in a provider's translation, say) after the response started: the client still
        # gets an error event and a clean end, never a cut connection.
        error = _internal_error(ledger, exc)
        outcome, status = "error", error.status
        yield _frame(error.body())
    finally:
        ledger.finish(meter.usage(_prompt_counter(gw, body)), status, outcome)
        aclose = getattr(chunks, "aclose", None)
        if aclose is not None:
            await aclose()


def _internal_error(ledger: RequestLedger, exc: Exception) -> GatewayError:
    """A 500 for an unexpected exception once a stream has started, logged with the request id
    (the exception's type only: its text may hold request content)."""
    log.error(
        "stream of request %s failed after it started: %s",
        ledger.request_id,
        type(exc).__name__,
    )
    return GatewayError(
        500, f"internal error (request id {ledger.request_id})", code="internal_error"
    )


def _chunk_like(first: JSON, choices: list[JSON]) -> JSON:
    return {
        "id": first.get("id"),
        "object": "chat.completion.chunk",
        "created": first.get("created"),
        "model": first.get("model"),
        "choices": choices,
    }


def _budget_cut() -> GatewayError:
    return GatewayError(
        429,
        "the stream was ended because a hard spend cap was reached",
        code="budget_exceeded",
        type="insufficient_quota",
    )


async def _prepend(first: JSON, rest: AsyncIterator[JSON]) -> AsyncIterator[JSON]:
    yield first
    async for chunk in rest:
        yield chunk
