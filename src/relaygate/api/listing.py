"""OpenAI-style lists: `limit`/`after` in, `data`/`first_id`/`last_id`/`has_more` out."""

from __future__ import annotations

from typing import Any

from starlette.requests import Request
from starlette.responses import Response

from relaygate.api.checks import plausible_id
from relaygate.api.responses import json_response
from relaygate.errors import bad_request


def page_args(request: Request, default: int, most: int) -> tuple[int, str | None]:
    """The page size (400 outside 1..`most`) and the `after` cursor."""
    try:
        limit = int(request.query_params.get("limit", str(default)))
    except ValueError:
        limit = 0
    if not 1 <= limit <= most:
        raise bad_request(f"limit must be an integer from 1 to {most}", param="limit")
    after = request.query_params.get("after")
    if after is not None and not plausible_id(after):
        raise bad_request("after must be the id of an object of the previous page", param="after")
    return limit, after


def page_response(items: list[dict[str, Any]], has_more: bool) -> Response:
    """One page of objects (each with an `id`)."""
    body = {
        "object": "list",
        "data": items,
        "first_id": items[0]["id"] if items else None,
        "last_id": items[-1]["id"] if items else None,
        "has_more": has_more,
    }
    return json_response(body)
