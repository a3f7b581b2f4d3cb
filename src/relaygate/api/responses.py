"""JSON answers of the data-plane endpoints (serialised with orjson)."""

from __future__ import annotations

from collections.abc import Callable

import orjson
from starlette.responses import Response
from starlette.types import Receive, Scope, Send


def json_response(
    payload: object, status: int = 200, headers: dict[str, str] | None = None
) -> Response:
    """`payload` as an `application/json` response."""
    return Response(
        orjson.dumps(payload), status_code=status, headers=headers, media_type="application/json"
    )


class AnswerThen(Response):
    """A JSON answer that calls `then()` once its bytes are handed to the server.

    Bookkeeping the client does not wait for (the usage record) runs after the answer is
    written instead of before it. `then()` runs even if sending fails or is cancelled, and before
    the ASGI call returns, so whatever reads the record after the call still finds it.
    """

    def __init__(self, payload: object, headers: dict[str, str], then: Callable[[], object]):
        super().__init__(orjson.dumps(payload), headers=headers, media_type="application/json")
        self._then = then

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        try:
            await super().__call__(scope, receive, send)
        finally:
            self._then()
