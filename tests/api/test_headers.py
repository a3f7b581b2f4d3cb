"""The data plane's indexed request headers answer exactly as Starlette's do."""

from __future__ import annotations

import pytest
from starlette.datastructures import Headers

from relaygate.api.headers import IndexedHeaders, IndexedRequest

RAW = [
    (b"host", b"gateway.example"),
    (b"authorization", b"Bearer rg_live_abc"),
    (b"x-forwarded-for", b"10.0.0.1"),
    (b"x-forwarded-for", b"10.0.0.2"),
    (b"x-caf\xe9", b"caf\xe9"),
]


@pytest.mark.parametrize(
    "name",
    ["host", "Authorization", "AUTHORIZATION", "x-forwarded-for", "x-caf\xe9", "api-key", ""],
)
def test_lookups_match_starlette(name: str) -> None:
    ours, theirs = IndexedHeaders(raw=list(RAW)), Headers(raw=list(RAW))
    assert ours.get(name) == theirs.get(name)
    assert ours.get(name, "fallback") == theirs.get(name, "fallback")
    assert (name in ours) == (name in theirs)
    if name in theirs:
        assert ours[name] == theirs[name]
    else:
        with pytest.raises(KeyError):
            ours[name]


def test_repeated_headers_first_wins_and_getlist_keeps_all() -> None:
    headers = IndexedHeaders(raw=list(RAW))
    assert headers["x-forwarded-for"] == "10.0.0.1"
    assert headers.getlist("x-forwarded-for") == ["10.0.0.1", "10.0.0.2"]
    assert len(headers) == len(RAW)
    assert 42 not in headers  # not a name: absent, as in Starlette


def test_request_hands_out_indexed_headers_once() -> None:
    scope = {"type": "http", "method": "POST", "path": "/", "headers": list(RAW)}
    request = IndexedRequest(scope)
    assert isinstance(request.headers, IndexedHeaders)
    assert request.headers is request.headers
    assert request.headers.get("authorization") == "Bearer rg_live_abc"
