"""JSON answers of the data-plane endpoints (serialised with orjson)."""

from __future__ import annotations

import orjson
from starlette.responses import Response


def json_response(
    payload: object, status: int = 200, headers: dict[str, str] | None = None
) -> Response:
    """`payload` as an `application/json` response."""
    return Response(
        orjson.dumps(payload), status_code=status, headers=headers, media_type="application/json"
    )
