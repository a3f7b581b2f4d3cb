"""The pooled upstream HTTP client shared by every HTTP provider.

One keep-alive connection pool per provider (`http1.Pool`), separate connect / first-byte /
between-chunk / total timeouts, redirects never followed, and response bodies capped in size.
Error messages never contain the upstream URL or any credential.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import AsyncGenerator, AsyncIterator, Iterable, Mapping
from contextlib import asynccontextmanager
from typing import Any
from urllib.parse import urlencode

import orjson

from relaygate.config.schema import ProviderConfig
from relaygate.errors import CredentialError, UpstreamError, parse_retry_after
from relaygate.providers.credentials import VaultCredentials
from relaygate.providers.http1 import ConnectFailed, HTTPClientError, Pool, Response, encode_headers
from relaygate.providers.sse import SSEDecoder, SSEEvent
from relaygate.vault.scope import revealed_values

log = logging.getLogger("relaygate.providers")


def _retry_after(headers: Mapping[str, str]) -> float | None:
    value = headers.get("retry-after-ms")
    if value:
        try:
            return max(0.0, float(value) / 1000)
        except ValueError:
            pass
    return parse_retry_after(headers.get("retry-after"))


def _clip(text: str, limit: int) -> str:
    """`text` cut to about `limit` characters at a space: never in the middle of a word, where
    half a secret would no longer look like one to the log's redaction."""
    if len(text) <= limit:
        return text
    return text[:limit].rsplit(maxsplit=1)[0] + " [...]"


def _error_message(payload: bytes) -> tuple[str | None, str | None, str | None]:
    """Pull message, code and param out of an OpenAI/Anthropic/Gemini error body, if any."""
    try:
        data = orjson.loads(payload)
    except orjson.JSONDecodeError:
        return None, None, None
    if isinstance(data, list) and data:
        data = data[0]
    if not isinstance(data, dict):
        return None, None, None
    error = data.get("error", data)
    if not isinstance(error, dict):
        return (error if isinstance(error, str) else None), None, None
    message = error.get("message")
    code = error.get("code") or error.get("type") or error.get("status")
    if isinstance(code, int) and isinstance(error.get("status"), str):
        code = error["status"]  # Google: `code` repeats the HTTP status, `status` names it
    param = error.get("param")
    return (
        message if isinstance(message, str) else None,
        str(code) if code is not None else None,
        param if isinstance(param, str) else None,
    )


class UpstreamClient:
    """HTTP access to one provider. Knows nothing of any wire format beyond JSON and SSE."""

    def __init__(
        self,
        config: ProviderConfig,
        base_url: str,
        headers: Mapping[str, str],
        secrets: Iterable[str] = (),
    ) -> None:
        self.config = config
        self.base_url = base_url.rstrip("/")
        values = {**headers, "Content-Type": "application/json"}
        # Encoded once: without vault credentials every request sends the same headers.
        self._headers = encode_headers(values)
        # By lower-cased name, for vault credentials to replace per request.
        self._by_name = {name.lower(): (name, value) for name, value in values.items()}
        # Only the resolved credentials are redacted (not every header value, e.g. a version).
        self._secrets = sorted({s for s in secrets if len(s) >= 4}, key=len, reverse=True)
        self._pool: Pool | None = None
        # Set when some credentials are `vault:` references (resolved per request).
        self.vault: VaultCredentials | None = None

    def _get_pool(self) -> Pool:
        # Made on first use, inside the event loop that will use it.
        if self._pool is None:
            self._pool = Pool(
                self.base_url,
                limit=self.config.max_connections,
                connect_timeout=self.config.timeouts.connect,
            )
        return self._pool

    def redact(self, text: str) -> str:
        """Remove any credential this client holds, or this request decrypted, from `text`."""
        for secret in (*self._secrets, *revealed_values()):
            text = text.replace(secret, "[redacted]")
        return text

    async def aclose(self) -> None:
        """Close the pool."""
        if self._pool is not None:
            await self._pool.aclose()
            self._pool = None

    @asynccontextmanager
    async def _request(
        self, path: str, body: Any, params: Mapping[str, str] | None, deadline: float
    ) -> AsyncIterator[Response]:
        name = self.config.name
        pool = self._get_pool()
        target = pool.prefix + path
        if params:
            target += "?" + urlencode(params)
        headers = self._headers
        if self.vault is not None:
            # This request's credentials replace the configured headers of the same name.
            resolved = dict(self._by_name)
            for header, value in (await self.vault.headers()).items():
                resolved[header.lower()] = (header, value)
            try:
                headers = encode_headers(dict(resolved.values()))
            except ValueError:
                raise CredentialError(
                    503,
                    f"a vault credential of provider {name!r} is not a valid header value",
                    code="credential_unavailable",
                ) from None
        first_byte = asyncio.get_running_loop().time() + self.config.timeouts.first_byte
        try:
            async with asyncio.timeout_at(min(deadline, first_byte)):
                response = await pool.post(target, headers, orjson.dumps(body))
        except TimeoutError:
            raise UpstreamError(
                504,
                f"provider {name!r} did not answer in time",
                retryable=True,
                code="upstream_timeout",
            ) from None
        except ConnectFailed:
            raise UpstreamError(
                503,
                f"provider {name!r} is unreachable",
                retryable=True,
                code="upstream_unavailable",
            ) from None
        except HTTPClientError:
            raise UpstreamError(
                502,
                f"provider {name!r} failed before answering (connection error)",
                retryable=True,
                code="upstream_unreachable",
            ) from None
        try:
            if response.status >= 300:
                await self._raise_for_status(response)
            yield response
        finally:
            response.release()  # kept for reuse only if the body was read to its end

    async def _raise_for_status(self, response: Response) -> None:
        name = self.config.name
        status = response.status
        try:
            async with asyncio.timeout(self.config.timeouts.between_chunks):
                payload = await response.read(64 * 1024)
        except (HTTPClientError, TimeoutError):
            payload = b""
        message, code, param = _error_message(payload)
        retry_after = _retry_after(response.headers)
        # What the provider said, for the operator (the log's redaction filter removes secrets
        # and personal data it may echo; vault credentials are removed here as well).
        log.log(
            logging.INFO if status == 429 else logging.WARNING,
            "provider %r answered HTTP %d (%s): %s",
            name,
            status,
            code,
            _clip(self.redact(message), 2000) if message else "no error message",
        )
        if 300 <= status < 400:
            raise UpstreamError(502, f"provider {name!r} answered with a redirect", retryable=False)
        if self.vault is not None and status in (401, 403, 429):
            # The key came from the vault for this request's tenant: its refusal (or its quota)
            # is that tenant's, not the deployment's (routing/outcome.py).
            raise self.tenant_refusal(status, retry_after)
        if status in (401, 403):
            raise UpstreamError(
                502,
                f"provider {name!r} rejected the gateway's credentials",
                retryable=True,
                code="upstream_auth_failed",
            )
        if status == 429:
            raise UpstreamError(
                429,
                f"provider {name!r} is rate limiting",
                retryable=True,
                retry_after=retry_after,
                code=code or "rate_limit_exceeded",
            )
        if status in (408, 504):
            raise UpstreamError(
                504,
                f"provider {name!r} timed out",
                retryable=True,
                retry_after=retry_after,
                code="upstream_timeout",
            )
        if status >= 500:
            raise UpstreamError(
                502,
                f"provider {name!r} failed (HTTP {status})",
                retryable=True,
                retry_after=retry_after,
                code="upstream_error",
            )
        detail = self.redact(message)[:2000] if message else f"HTTP {status}"
        out_status = status if status in (400, 404, 413, 422) else 400
        raise UpstreamError(
            out_status,
            f"provider {name!r} rejected the request: {detail}",
            retryable=False,
            code=code,
            param=param,
        )

    def tenant_refusal(self, status: int, retry_after: float | None = None) -> CredentialError:
        """The error for a provider refusing this request's vault-held credential: 403
        `credential_rejected` (401/403 upstream) or 429 for that credential's own quota."""
        name = self.config.name
        if status == 429:
            return CredentialError(
                429,
                f"provider {name!r} is rate limiting this tenant's credential",
                code="credential_rate_limited",
                retry_after=retry_after,
            )
        return CredentialError(
            403,
            f"provider {name!r} rejected this tenant's credential",
            code="credential_rejected",
        )

    @staticmethod
    def end_by(timeout_s: float | None) -> float | None:
        """The event-loop time `timeout_s` from now (None stays None): the form in which a
        caller's time limit (the router's, for an attempt) reaches `post_json`."""
        if timeout_s is None:
            return None
        return asyncio.get_running_loop().time() + timeout_s

    def _deadline(self) -> float:
        return asyncio.get_running_loop().time() + self.config.timeouts.total

    async def _chunks(self, response: Response, deadline: float) -> AsyncGenerator[bytes, None]:
        """The body as it arrives, each read that has to wait bounded by the between-chunks
        timeout and the overall deadline. The timeout wraps a single await, so it holds whichever
        task reads."""
        between = self.config.timeouts.between_chunks
        loop = asyncio.get_running_loop()
        cap = self.config.max_response_bytes
        size = 0
        while True:
            if response.ready():  # arrived already (a small answer comes whole): no timer
                chunk = await response.read_chunk()
            else:
                async with asyncio.timeout_at(min(deadline, loop.time() + between)):
                    chunk = await response.read_chunk()
            if not chunk:
                return
            size += len(chunk)
            if size > cap:
                raise UpstreamError(
                    502,
                    f"provider {self.config.name!r} response exceeds {cap} bytes",
                    retryable=False,
                    code="upstream_error",
                )
            yield chunk

    async def post_json(
        self,
        path: str,
        body: Any,
        params: Mapping[str, str] | None = None,
        end_by: float | None = None,
    ) -> Any:
        """POST JSON, return parsed JSON; bounded by the timeouts, the size cap and `end_by`
        (an event-loop time, see `end_by`)."""
        deadline = self._deadline()
        if end_by is not None and end_by < deadline:
            deadline = end_by
        try:
            async with self._request(path, body, params, deadline) as response:
                payload = b"".join([chunk async for chunk in self._chunks(response, deadline)])
        except TimeoutError:
            raise UpstreamError(
                504,
                f"provider {self.config.name!r} timed out",
                retryable=True,
                code="upstream_timeout",
            ) from None
        except HTTPClientError:
            raise UpstreamError(
                502,
                f"provider {self.config.name!r} connection failed",
                retryable=True,
            ) from None
        try:
            return orjson.loads(payload)
        except orjson.JSONDecodeError:
            raise UpstreamError(
                502, f"provider {self.config.name!r} sent invalid JSON", retryable=True
            ) from None

    async def stream_events(
        self, path: str, body: Any, params: Mapping[str, str] | None = None
    ) -> AsyncGenerator[SSEEvent, None]:
        """POST JSON and yield the SSE events of the response as they arrive."""
        name = self.config.name
        decoder = SSEDecoder()
        deadline = self._deadline()
        try:
            async with self._request(path, body, params, deadline) as response:
                async for chunk in self._chunks(response, deadline):
                    for event in decoder.feed(chunk):
                        yield event
        except TimeoutError:
            raise UpstreamError(
                504, f"provider {name!r} stream timed out", retryable=True, code="upstream_timeout"
            ) from None
        except HTTPClientError:
            raise UpstreamError(
                502,
                f"provider {name!r} stream broke",
                retryable=True,
                code="upstream_disconnected",
            ) from None
