"""GET /v1/openapi.json: the OpenAPI 3.1 description of the data plane (`openapi.yaml`).

It documents the requests the gateway accepts, with the default bounds, and is what the fuzz
tests generate requests from (tests/api/test_fuzz.py, bench/fuzz.py).
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from importlib import resources
from typing import Any

import orjson
import yaml
from starlette.requests import Request
from starlette.responses import Response


def description() -> dict[str, Any]:
    """The OpenAPI document as shipped in the package."""
    text = resources.files("relaygate.api").joinpath("openapi.yaml").read_text("utf-8")
    document: dict[str, Any] = yaml.safe_load(text)
    return document


def endpoint() -> Callable[[Request], Awaitable[Response]]:
    """The handler, with the document serialised once when the app is built."""
    body = orjson.dumps(description())

    async def openapi(_request: Request) -> Response:
        return Response(body, media_type="application/json")

    return openapi
