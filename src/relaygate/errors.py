"""Errors in OpenAI's envelope, shared by every layer that can reject a request."""

from __future__ import annotations

import email.utils
import math
import time
from typing import Any

import orjson

# OpenAI's `type` for each status, so the official SDKs raise the matching exception class.
ERROR_TYPES: dict[int, str] = {
    400: "invalid_request_error",
    401: "authentication_error",
    403: "permission_error",
    404: "not_found_error",
    405: "invalid_request_error",
    408: "timeout_error",
    409: "conflict_error",
    413: "invalid_request_error",
    415: "invalid_request_error",
    422: "invalid_request_error",
    429: "rate_limit_error",
    500: "server_error",
    502: "upstream_error",
    503: "service_unavailable",
    504: "timeout_error",
}


class GatewayError(Exception):
    """An error answered to the client in OpenAI's error envelope."""

    def __init__(
        self,
        status: int,
        message: str,
        *,
        param: str | None = None,
        code: str | None = None,
        type: str | None = None,
        headers: dict[str, str] | None = None,
    ) -> None:
        super().__init__(message)
        self.status = status
        self.message = message
        self.param = param
        self.code = code
        self.type = type or ERROR_TYPES.get(status, "server_error")
        self.headers = headers or {}

    def body(self) -> dict[str, Any]:
        """The `{"error": {...}}` envelope."""
        return {
            "error": {
                "message": self.message,
                "type": self.type,
                "param": self.param,
                "code": self.code,
            }
        }

    def to_bytes(self) -> bytes:
        """The envelope serialised as JSON."""
        return orjson.dumps(self.body())


class UpstreamError(GatewayError):
    """A provider call failed. `retryable` says whether another deployment may be tried."""

    def __init__(
        self,
        status: int,
        message: str,
        *,
        retryable: bool,
        retry_after: float | None = None,
        code: str | None = None,
        param: str | None = None,
        type: str | None = None,
    ) -> None:
        headers = {"Retry-After": str(max(1, round(retry_after)))} if retry_after else None
        super().__init__(status, message, code=code, param=param, type=type, headers=headers)
        self.retryable = retryable
        self.retry_after = retry_after


class CredentialError(UpstreamError):
    """The credential this request would send to a deployment cannot be used: missing, not
    granted to the caller's tenant and environment, undecryptable, or refused by the provider
    (a tenant-scoped key answered with 401/403, or that key's own quota with 429).

    A fault of the caller's tenant (or of the vault), never of the deployment: it does not count
    against the deployment's health, and routing may try another deployment (see
    routing/outcome.py). Messages name the credential, never its value.
    """

    def __init__(
        self,
        status: int,
        message: str,
        *,
        code: str,
        retry_after: float | None = None,
    ) -> None:
        super().__init__(status, message, retryable=True, retry_after=retry_after, code=code)


def parse_retry_after(value: str | None, now: float | None = None) -> float | None:
    """Seconds to wait from a `Retry-After` value (seconds, or an HTTP date, counted from `now`
    or the current time); None when absent or unreadable."""
    if not value:
        return None
    text = value.strip()
    try:
        seconds = float(text)
    except ValueError:
        try:
            moment = email.utils.parsedate_to_datetime(text)
        except (TypeError, ValueError):
            return None
        if moment.tzinfo is None:
            return None
        seconds = moment.timestamp() - (time.time() if now is None else now)
    return max(0.0, seconds) if math.isfinite(seconds) else None


def model_not_found(name: str) -> GatewayError:
    """OpenAI's 404 for a model the caller cannot use (unknown and forbidden look the same)."""
    return GatewayError(
        404,
        f"The model '{name}' does not exist or you do not have access to it.",
        param="model",
        code="model_not_found",
    )


def bad_request(message: str, param: str | None = None, code: str | None = None) -> GatewayError:
    """A 400 naming the offending parameter."""
    return GatewayError(400, message, param=param, code=code)
