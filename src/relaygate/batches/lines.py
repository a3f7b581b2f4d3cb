"""Reading a batch input file: one request per line, every problem reported with its line."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import orjson

from relaygate.errors import GatewayError

MAX_LINES = 50_000  # the default of `batches.max_requests`

Check = Callable[[dict[str, Any]], None]
"""Validates one line's `body` as its endpoint would, raising a 400 `GatewayError`."""


@dataclass(frozen=True, slots=True)
class Line:
    """One request of a batch."""

    number: int
    custom_id: str
    body: dict[str, Any]


def parse_lines(
    content: bytes, endpoint: str, max_lines: int = MAX_LINES, check: Check | None = None
) -> tuple[list[Line], list[dict[str, Any]]]:
    """The requests, or the errors (OpenAI's shape: code, message, param, line) if any.

    At most `max_lines` requests; `check` validates each body as the endpoint will (so a bad
    line is reported now, with its line number, rather than failing later as a job)."""
    lines: list[Line] = []
    errors: list[dict[str, Any]] = []
    seen: set[str] = set()

    def fail(number: int, message: str, param: str | None = None) -> None:
        if len(errors) < 100:
            errors.append(
                {"code": "invalid_request", "message": message, "param": param, "line": number}
            )

    try:
        text = content.decode("utf-8")
    except UnicodeDecodeError:
        fail(1, "the file is not UTF-8")
        return [], errors
    rows = [r for r in text.splitlines() if r.strip()]
    if not rows:
        fail(1, "the file has no requests")
    if len(rows) > max_lines:
        fail(max_lines + 1, f"a batch holds at most {max_lines} requests")
        return [], errors
    for number, raw in enumerate(rows, start=1):
        try:
            item = orjson.loads(raw)
        except orjson.JSONDecodeError:
            fail(number, "not a JSON object")
            continue
        if not isinstance(item, dict):
            fail(number, "not a JSON object")
            continue
        custom_id = item.get("custom_id")
        if not isinstance(custom_id, str) or not 1 <= len(custom_id) <= 512 or "\x00" in custom_id:
            fail(
                number,
                "custom_id must be a string of 1 to 512 characters, without NUL",
                "custom_id",
            )
            continue
        if custom_id in seen:
            fail(number, f"custom_id '{custom_id[:64]}' is used twice", "custom_id")
            continue
        seen.add(custom_id)
        if item.get("method", "POST") != "POST":
            fail(number, "method must be POST", "method")
            continue
        if item.get("url") != endpoint:
            fail(number, f"url must be the batch's endpoint {endpoint}", "url")
            continue
        body = item.get("body")
        if not isinstance(body, dict):
            fail(number, "body must be a JSON object", "body")
            continue
        if body.get("stream"):
            fail(number, "batch requests cannot stream", "body.stream")
            continue
        if check is not None:
            try:
                check(body)
            except GatewayError as exc:
                fail(number, exc.message, exc.param)
                continue
        lines.append(Line(number, custom_id, body))
    return lines, errors
