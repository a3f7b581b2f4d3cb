"""Raw HTTP against a real gateway process: what the parser refuses is answered in the JSON error
envelope (not uvicorn's text/plain) and counted, a client that leaves while sending its body is
a counted INFO line (not an unhandled ERROR), and the gateway serves on after each."""

from __future__ import annotations

import socket
import time
from collections.abc import Iterator
from typing import Any

import httpx
import orjson
import pytest

from tests.support.gateway import RunningGateway, start_gateway

# Each case: raw bytes, and the parser's reason the answer must name.
PARSER_CASES = {
    "bare LF line ends": (b"GET /healthz HTTP/1.1\nHost: t\n\n", "Expected CRLF after version"),
    "bare CR": (b"GET /healthz HTTP/1.1\rHost: t\r\n\r\n", "Expected CRLF after version"),
    "header continuation line": (
        b"GET /healthz HTTP/1.1\r\nHost: t\r\nX-A: a\r\n folded\r\n\r\n",
        "Unexpected whitespace after header value",
    ),
    "NUL in a header value": (
        b"GET /healthz HTTP/1.1\r\nHost: t\r\nX-A: a\x00b\r\n\r\n",
        "Invalid header value char",
    ),
    "conflicting Content-Length": (
        b"POST /v1/chat/completions HTTP/1.1\r\nHost: t\r\nContent-Length: 2\r\n"
        b"Content-Length: 3\r\n\r\n{}",
        "Duplicate Content-Length",
    ),
    "negative Content-Length": (
        b"POST /v1/chat/completions HTTP/1.1\r\nHost: t\r\nContent-Length: -1\r\n\r\n{}",
        "Invalid character in Content-Length",
    ),
    "Content-Length with chunked": (
        b"POST /v1/chat/completions HTTP/1.1\r\nHost: t\r\nContent-Length: 2\r\n"
        b"Transfer-Encoding: chunked\r\n\r\n2\r\n{}\r\n0\r\n\r\n",
        "Transfer-Encoding can't be present with Content-Length",
    ),
    "unknown method": (b"FROB /healthz HTTP/1.1\r\nHost: t\r\n\r\n", "Invalid method encountered"),
    "space before the colon": (
        b"GET /healthz HTTP/1.1\r\nHost : t\r\n\r\n",
        "Invalid header token",
    ),
    "control character in the path": (
        b"GET /heal\x01thz HTTP/1.1\r\nHost: t\r\n\r\n",
        "Invalid char in url path",
    ),
    "HTTP/2 preface": (b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n", "HTTP/2 is not supported"),
    "bad chunk size": (
        b"POST /v1/chat/completions HTTP/1.1\r\nHost: t\r\nContent-Type: application/json\r\n"
        b"Transfer-Encoding: chunked\r\n\r\nzz\r\n{}\r\n0\r\n\r\n",
        "Invalid character in chunk size",
    ),
}


@pytest.fixture(scope="module")
def gateway(tmp_path_factory: pytest.TempPathFactory) -> Iterator[RunningGateway]:
    """A gateway of its own: its counters and its log see only this module's requests."""
    running = start_gateway(tmp_path_factory.mktemp("edges"), None)
    yield running
    running.stop()


def _address(gw: RunningGateway) -> tuple[str, int]:
    host, port = gw.base_url.removeprefix("http://").rsplit(":", 1)
    return host, int(port)


def _exchange(gw: RunningGateway, data: bytes) -> tuple[bytes, bool]:
    """Send `data` on a new connection; everything answered, and whether the server closed."""
    with socket.create_connection(_address(gw), timeout=10) as sock:
        sock.sendall(data)
        received = b""
        sock.settimeout(5)
        try:
            while chunk := sock.recv(65536):
                received += chunk
        except TimeoutError:
            return received, False
    return received, True


def _response(raw: bytes) -> tuple[int, dict[str, str], bytes]:
    head, _, body = raw.partition(b"\r\n\r\n")
    status_line, *lines = head.decode("latin-1").split("\r\n")
    headers = {k.strip().lower(): v.strip() for k, v in (line.split(":", 1) for line in lines)}
    return int(status_line.split()[1]), headers, body


def _stats(gw: RunningGateway) -> dict[str, Any]:
    answer = httpx.get(
        gw.base_url + "/admin/v1/server/stats",
        headers={"Authorization": f"Bearer {gw.admin_key}"},
        timeout=10,
    )
    assert answer.status_code == 200, answer.text
    stats: dict[str, Any] = answer.json()
    assert stats["counted"] is True
    return stats


def _assert_serving(gw: RunningGateway) -> None:
    assert httpx.get(gw.base_url + "/healthz", timeout=10).status_code == 200
    answer = httpx.post(
        gw.v1 + "/chat/completions",
        headers={"Authorization": f"Bearer {gw.key}"},
        json={"model": "fast", "messages": [{"role": "user", "content": "still there?"}]},
        timeout=30,
    )
    assert answer.status_code == 200, answer.text


@pytest.mark.parametrize("case", list(PARSER_CASES))
def test_a_request_the_parser_refuses_gets_the_json_envelope(
    gateway: RunningGateway, case: str
) -> None:
    data, reason = PARSER_CASES[case]
    before = _stats(gateway)
    raw, closed = _exchange(gateway, data)
    status, headers, body = _response(raw)
    assert status == 400
    assert headers["content-type"] == "application/json"
    assert int(headers["content-length"]) == len(body)
    assert headers["connection"] == "close" and closed
    error = orjson.loads(body)["error"]
    assert error["type"] == "invalid_request_error"
    assert error["code"] == "invalid_http_request"
    assert error["param"] is None
    assert error["message"].startswith("invalid HTTP/1.1 request: ")
    assert reason in error["message"]
    after = _stats(gateway)
    assert after["invalid_http_requests"] == before["invalid_http_requests"] + 1
    counted = [k for k in after["invalid_http_requests_by_reason"] if reason in k]
    assert len(counted) == 1
    assert after["invalid_http_requests_by_reason"][counted[0]] == (
        before["invalid_http_requests_by_reason"].get(counted[0], 0) + 1
    )
    _assert_serving(gateway)


def test_garbage_after_a_good_request_on_one_connection(gateway: RunningGateway) -> None:
    good = b"GET /healthz HTTP/1.1\r\nHost: t\r\n\r\n"
    raw, closed = _exchange(gateway, good + b"GET /healthz HTTP/1.1\nHost: t\n\n")
    first, _, rest = raw.partition(b'{"status":"ok"}')
    assert _response(first)[0] == 200
    status, headers, body = _response(rest)
    assert (status, headers["content-type"], closed) == (400, "application/json", True)
    assert orjson.loads(body)["error"]["code"] == "invalid_http_request"


def test_a_websocket_upgrade_is_answered_as_plain_http(gateway: RunningGateway) -> None:
    """The gateway speaks no WebSocket: the request is served like any other (here: no key,
    so the envelope's 401), not refused by an empty text/plain 403."""
    raw, _ = _exchange(
        gateway,
        b"GET /v1/models HTTP/1.1\r\nHost: t\r\nConnection: Upgrade\r\nUpgrade: websocket\r\n"
        b"Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\n\r\n",
    )
    status, headers, body = _response(raw)
    assert (status, headers["content-type"]) == (401, "application/json")
    assert orjson.loads(body)["error"]["code"] == "invalid_api_key"


def _wait_for(gw: RunningGateway, disconnects: int) -> dict[str, Any]:
    deadline = time.monotonic() + 10
    while True:
        stats = _stats(gw)
        if stats["body_disconnects"] >= disconnects or time.monotonic() > deadline:
            return stats
        time.sleep(0.05)


@pytest.mark.parametrize("path", ["/v1/chat/completions", "/v1/jobs", "/v1/embeddings"])
def test_a_client_leaving_mid_body_is_counted_not_an_error(
    gateway: RunningGateway, path: str
) -> None:
    before = _stats(gateway)["body_disconnects"]
    log_before = len(gateway.logs())
    body = b'{"model": "fast", "messages": [{"role": "user", "content": "' + b"x" * 200
    head = (
        f"POST {path} HTTP/1.1\r\nHost: t\r\nAuthorization: Bearer {gateway.key}\r\n"
        f"Content-Type: application/json\r\nContent-Length: {2 * len(body)}\r\n\r\n"
    ).encode()
    with socket.create_connection(_address(gateway), timeout=10) as sock:
        sock.sendall(head + body)  # half of what Content-Length announced
        time.sleep(0.3)  # the handler is reading the body when the client goes
    stats = _wait_for(gateway, before + 1)
    assert stats["body_disconnects"] == before + 1
    _assert_serving(gateway)
    log = gateway.logs()[log_before:]
    assert "the connection closed before the body of POST " + path in log
    assert " ERROR " not in log and "ERROR:" not in log and '"level":"error"' not in log
    assert "Traceback" not in log and "unhandled" not in log


def test_only_the_operator_reads_the_counters(gateway: RunningGateway) -> None:
    answer = httpx.get(gateway.base_url + "/admin/v1/server/stats", timeout=10)
    assert answer.status_code == 401
    stats = _stats(gateway)
    assert stats["pid"] > 0 and stats["since"].endswith("Z")


@pytest.mark.parametrize(
    "head",
    [
        b"GET /healthz HTTP/1.1\r\nHost: t\r\nX-Big: " + b"a" * 200_000 + b"\r\n\r\n",
        b"GET /healthz HTTP/1.1\r\nHost: t\r\n" + b"X-Many: a\r\n" * 10_000 + b"\r\n",
        b"GET /healthz?" + b"q" * 100_000 + b" HTTP/1.1\r\nHost: t\r\n\r\n",
        # Never finished: the gateway does not wait for the end of a head it will refuse.
        b"GET /healthz HTTP/1.1\r\nHost: t\r\nX-Endless: " + b"a" * 100_000,
    ],
    ids=["one huge header", "many headers", "huge URL", "unfinished huge head"],
)
def test_a_head_over_64_kib_is_refused_with_431(gateway: RunningGateway, head: bytes) -> None:
    before = _stats(gateway)["invalid_http_requests"]
    raw, closed = _exchange(gateway, head)
    status, headers, body = _response(raw)
    assert (status, headers["content-type"], closed) == (431, "application/json", True)
    assert orjson.loads(body)["error"] == {
        "message": "the request line and headers exceed 65536 bytes",
        "type": "invalid_request_error",
        "param": None,
        "code": "request_headers_too_large",
    }
    assert _stats(gateway)["invalid_http_requests"] == before + 1
    _assert_serving(gateway)


def test_a_head_just_under_the_bound_is_served(gateway: RunningGateway) -> None:
    head = b"GET /healthz HTTP/1.1\r\nHost: t\r\nX-Big: " + b"a" * 60_000 + b"\r\n\r\n"
    raw, _ = _exchange(gateway, head)
    assert _response(raw)[0] == 200
