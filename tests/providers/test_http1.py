"""The lean HTTP/1.1 pool that carries every provider call: reuse, framing, TLS, limits."""

from __future__ import annotations

import asyncio
import datetime
import gzip
import ipaddress
import ssl
import time
from collections.abc import AsyncIterator
from pathlib import Path

import pytest
from aiohttp import web
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID

from relaygate.errors import UpstreamError
from relaygate.providers.http import UpstreamClient
from relaygate.providers.http1 import HTTPClientError, Pool, encode_headers
from tests.support.upstream import provider_config, upstream_client


class Upstream:
    """An aiohttp server that records what it saw."""

    def __init__(self) -> None:
        self.peers: list[object] = []
        self.in_flight = 0
        self.most_in_flight = 0
        self.headers: list[dict[str, str]] = []
        self.versions: list[list[str]] = []

    def app(self) -> web.Application:
        app = web.Application()
        app.router.add_post("/v1/echo", self.echo)
        app.router.add_post("/v1/chunked", self.chunked)
        app.router.add_post("/v1/gzip", self.gzipped)
        app.router.add_post("/v1/slow", self.slow)
        app.router.add_post("/v1/close", self.close_after)
        return app

    def _seen(self, request: web.Request) -> None:
        assert request.transport is not None
        self.peers.append(request.transport.get_extra_info("peername"))
        self.headers.append(dict(request.headers))
        self.versions.append(request.headers.getall("X-Version", []))

    async def echo(self, request: web.Request) -> web.Response:
        self._seen(request)
        body = await request.json()
        return web.json_response({"got": body, "query": dict(request.query)})

    async def chunked(self, request: web.Request) -> web.StreamResponse:
        self._seen(request)
        response = web.StreamResponse()
        response.enable_chunked_encoding()
        await response.prepare(request)
        for part in (b'{"parts": ', b"[1, 2, ", b"3]}"):
            await response.write(part)
            await asyncio.sleep(0.01)
        await response.write_eof()
        return response

    async def gzipped(self, request: web.Request) -> web.Response:
        self._seen(request)
        body = gzip.compress(b'{"packed": true}')
        return web.Response(body=body, headers={"Content-Encoding": "gzip"})

    async def slow(self, request: web.Request) -> web.Response:
        self._seen(request)
        self.in_flight += 1
        self.most_in_flight = max(self.most_in_flight, self.in_flight)
        await asyncio.sleep(0.05)
        self.in_flight -= 1
        return web.json_response({"ok": True})

    async def close_after(self, request: web.Request) -> web.Response:
        self._seen(request)
        return web.json_response({"ok": True}, headers={"Connection": "close"})


async def _serve(
    upstream: Upstream, ssl_context: ssl.SSLContext | None = None, keepalive: float = 75.0
) -> tuple[web.AppRunner, int]:
    runner = web.AppRunner(upstream.app(), keepalive_timeout=keepalive)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0, ssl_context=ssl_context)
    await site.start()
    return runner, runner.addresses[0][1]


@pytest.fixture
async def upstream() -> AsyncIterator[tuple[Upstream, str]]:
    found = Upstream()
    runner, port = await _serve(found)
    yield found, f"http://127.0.0.1:{port}"
    await runner.cleanup()


def _client(base: str, **settings: object) -> UpstreamClient:
    return upstream_client(base, "sk-test-key", **settings)


async def test_connections_are_reused_and_the_base_path_and_query_are_kept(
    upstream: tuple[Upstream, str],
) -> None:
    server, base = upstream
    client = _client(base + "/v1")
    try:
        for n in range(3):
            answer = await client.post_json("/echo", {"n": n}, params={"api-version": "2024 x"})
            assert answer == {"got": {"n": n}, "query": {"api-version": "2024 x"}}
    finally:
        await client.aclose()
    assert len(set(map(str, server.peers))) == 1  # one connection carried all three
    sent = server.headers[0]
    assert sent["Authorization"] == "Bearer sk-test-key"
    assert sent["Content-Type"] == "application/json"
    assert sent["Host"] == base.removeprefix("http://")


async def test_chunked_and_gzip_bodies_are_decoded(upstream: tuple[Upstream, str]) -> None:
    _, base = upstream
    client = _client(base)
    try:
        assert await client.post_json("/v1/chunked", {}) == {"parts": [1, 2, 3]}
        assert await client.post_json("/v1/gzip", {}) == {"packed": True}
    finally:
        await client.aclose()


async def test_connection_close_is_honoured(upstream: tuple[Upstream, str]) -> None:
    server, base = upstream
    client = _client(base)
    try:
        await client.post_json("/v1/close", {})
        await client.post_json("/v1/close", {})
    finally:
        await client.aclose()
    assert len(set(map(str, server.peers))) == 2


async def test_a_pooled_connection_the_server_closed_is_replaced_without_an_error() -> None:
    server = Upstream()
    runner, port = await _serve(server, keepalive=0.1)  # the server drops idle connections fast
    client = _client(f"http://127.0.0.1:{port}")
    try:
        await client.post_json("/v1/echo", {"n": 1})
        await asyncio.sleep(0.4)
        assert await client.post_json("/v1/echo", {"n": 2}) == {"got": {"n": 2}, "query": {}}
    finally:
        await client.aclose()
        await runner.cleanup()
    assert len(set(map(str, server.peers))) == 2


async def test_max_connections_caps_requests_in_flight(upstream: tuple[Upstream, str]) -> None:
    server, base = upstream
    client = _client(base, max_connections=2)
    try:
        await asyncio.gather(*(client.post_json("/v1/slow", {}) for _ in range(6)))
    finally:
        await client.aclose()
    assert server.most_in_flight == 2
    assert len(set(map(str, server.peers))) == 2


async def test_a_body_left_unread_closes_the_connection(upstream: tuple[Upstream, str]) -> None:
    server, base = upstream
    pool = Pool(base, limit=4, connect_timeout=2)
    headers = encode_headers({"Content-Type": "application/json"})
    response = await pool.post("/v1/chunked", headers, b"{}")
    assert response.status == 200
    assert await response.read_chunk()  # one piece, then the caller stops
    response.release()
    response = await pool.post("/v1/echo", headers, b"{}")
    assert await response.read(1000)
    response.release()
    await pool.aclose()
    assert len(set(map(str, server.peers))) == 2


def test_headers_that_could_split_a_request_are_refused() -> None:
    with pytest.raises(ValueError, match="CR, LF or NUL"):
        encode_headers({"Authorization": "Bearer x\r\nX-Injected: 1"})
    config = provider_config("http://127.0.0.1:9")
    with pytest.raises(ValueError) as caught:  # a provider's header is refused at start-up
        UpstreamClient(config, "http://127.0.0.1:9", {"X-Api": "secret-part\nb"})
    assert "secret-part" not in str(caught.value)


async def test_a_refused_connection_is_503_unavailable() -> None:
    client = _client("http://127.0.0.1:9")  # discard port: nothing listens
    with pytest.raises(UpstreamError) as caught:
        await client.post_json("/v1/echo", {})
    assert caught.value.status == 503
    assert caught.value.code == "upstream_unavailable"


async def _raw_answer(*parts: bytes) -> object:
    """What the client makes of a server that reads the request head, then writes `parts`
    (20 ms apart) and closes."""

    async def answer(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        await reader.readuntil(b"\r\n\r\n")
        for part in parts:
            writer.write(part)
            await writer.drain()
            await asyncio.sleep(0.02)
        writer.close()

    server = await asyncio.start_server(answer, "127.0.0.1", 0)
    client = _client(f"http://127.0.0.1:{server.sockets[0].getsockname()[1]}")
    try:
        return await client.post_json("/v1/x", {})
    finally:
        server.close()
        await client.aclose()


async def test_a_body_that_stalls_after_its_first_part_times_out() -> None:
    # The part that came with the headers is read without a timer; the wait for the rest is
    # still bounded by the between-chunks timeout.
    async def answer(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        await reader.readuntil(b"\r\n\r\n")
        writer.write(b'HTTP/1.1 200 OK\r\nContent-Length: 100\r\n\r\n{"partial": ')
        await writer.drain()
        await asyncio.sleep(5)
        writer.close()

    server = await asyncio.start_server(answer, "127.0.0.1", 0)
    port = server.sockets[0].getsockname()[1]
    client = _client(f"http://127.0.0.1:{port}", timeouts={"between_chunks": 0.3})
    try:
        started = time.monotonic()
        with pytest.raises(UpstreamError) as caught:
            await client.post_json("/v1/x", {})
        assert caught.value.status == 504
        assert time.monotonic() - started < 3
    finally:
        server.close()
        await client.aclose()


async def test_a_server_that_speaks_garbage_is_a_502() -> None:
    with pytest.raises(UpstreamError) as caught:
        await _raw_answer(b"NOT HTTP AT ALL\r\n\r\n")
    assert caught.value.status == 502


async def test_a_body_delimited_by_the_server_closing_is_read_whole() -> None:
    answer = await _raw_answer(b'HTTP/1.1 200 OK\r\nConnection: close\r\n\r\n{"closed": ', b"true}")
    assert answer == {"closed": True}


async def test_a_body_cut_short_is_an_error_not_a_truncated_answer() -> None:
    with pytest.raises(UpstreamError) as caught:
        await _raw_answer(b'HTTP/1.1 200 OK\r\nContent-Length: 100\r\n\r\n{"partial": ')
    assert caught.value.status == 502


def _certificate(directory: Path) -> tuple[Path, Path]:
    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "relaygate test")])
    now = datetime.datetime.now(datetime.UTC)
    cert = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - datetime.timedelta(minutes=5))
        .not_valid_after(now + datetime.timedelta(days=1))
        .add_extension(
            x509.SubjectAlternativeName([x509.IPAddress(ipaddress.ip_address("127.0.0.1"))]),
            critical=False,
        )
        .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
        .sign(key, hashes.SHA256())
    )
    cert_path, key_path = directory / "cert.pem", directory / "key.pem"
    cert_path.write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    key_path.write_bytes(
        key.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption(),
        )
    )
    return cert_path, key_path


async def test_https_verifies_the_server_against_the_trust_store(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    cert, key = _certificate(tmp_path)
    context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    context.load_cert_chain(cert, key)
    server = Upstream()
    runner, port = await _serve(server, ssl_context=context)
    try:
        untrusted = _client(f"https://127.0.0.1:{port}")
        with pytest.raises(UpstreamError) as caught:
            await untrusted.post_json("/v1/echo", {})
        assert caught.value.status == 503  # an unknown certificate is never accepted
        await untrusted.aclose()

        monkeypatch.setenv("SSL_CERT_FILE", str(cert))  # how an operator adds a private CA
        trusted = _client(f"https://127.0.0.1:{port}")
        assert await trusted.post_json("/v1/echo", {"tls": 1}) == {"got": {"tls": 1}, "query": {}}
        await trusted.aclose()
    finally:
        await runner.cleanup()


async def test_failed_requests_give_their_connection_slot_back() -> None:
    pool = Pool("http://127.0.0.1:9", limit=1, connect_timeout=1)
    with pytest.raises(ValueError):
        await pool.post("/v1/x\r\nHost: evil", b"", b"")
    for _ in range(3):  # with the single slot leaked, the second would wait for ever
        with pytest.raises(HTTPClientError):
            await asyncio.wait_for(pool.post("/v1/x", b"", b""), 2)


def test_the_same_under_uvloop_as_the_gateway_runs() -> None:
    uvloop = pytest.importorskip("uvloop")

    async def scenario() -> None:
        server = Upstream()
        runner, port = await _serve(server, keepalive=0.1)
        client = _client(f"http://127.0.0.1:{port}")
        try:
            assert await client.post_json("/v1/chunked", {}) == {"parts": [1, 2, 3]}
            assert await client.post_json("/v1/echo", {"n": 1}) == {"got": {"n": 1}, "query": {}}
            await asyncio.sleep(0.4)  # the server drops the idle connection
            assert await client.post_json("/v1/echo", {"n": 2}) == {"got": {"n": 2}, "query": {}}
        finally:
            await client.aclose()
            await runner.cleanup()
        assert len(set(map(str, server.peers))) == 2

    uvloop.run(scenario())


async def test_idle_connections_are_closed_after_the_idle_time(
    upstream: tuple[Upstream, str], monkeypatch: pytest.MonkeyPatch
) -> None:
    from relaygate.providers import http1

    monkeypatch.setattr(http1, "IDLE_S", 0.2)
    server, base = upstream
    pool = Pool(base, limit=4, connect_timeout=2)
    headers = encode_headers({"Content-Type": "application/json"})
    answers = await asyncio.gather(*(pool.post("/v1/slow", headers, b"{}") for _ in range(3)))
    for response in answers:
        await response.read(1000)
        response.release()
    assert pool.idle == 3
    await asyncio.sleep(0.5)
    assert pool.idle == 0  # closed by the pool, not left for the server to drop
    response = await pool.post("/v1/echo", headers, b"{}")
    await response.read(1000)
    response.release()
    await pool.aclose()
    assert len(set(map(str, server.peers))) == 4


class _Vault:
    """Stands in for VaultCredentials: this request's full set of auth headers."""

    async def headers(self) -> dict[str, str]:
        return {"authorization": "Bearer from-the-vault", "X-Version": "2024-01-01"}


async def test_vault_credentials_replace_configured_headers_of_the_same_name(
    upstream: tuple[Upstream, str],
) -> None:
    server, base = upstream
    client = UpstreamClient(
        provider_config(base), base, {"Authorization": "Bearer static", "X-Version": "2024-01-01"}
    )
    client.vault = _Vault()  # type: ignore[assignment]
    try:
        await client.post_json("/v1/echo", {})
    finally:
        await client.aclose()
    assert server.headers[0]["Authorization"] == "Bearer from-the-vault"
    assert server.versions[0] == ["2024-01-01"]  # once, not twice


async def test_a_closed_connection_is_freed_without_the_cycle_collector(
    upstream: tuple[Upstream, str],
) -> None:
    """After a burst, connections left for the cycle collector pin allocator arenas; a closed
    connection must be freed by reference counting alone."""
    import gc
    import weakref

    _, base = upstream
    pool = Pool(base, limit=4, connect_timeout=2)
    headers = encode_headers({"Content-Type": "application/json"})
    gc.disable()
    try:
        response = await pool.post("/v1/close", headers, b"{}")
        connection = weakref.ref(response._connection)  # type: ignore[arg-type]
        await response.read(1000)
        response.release()
        del response
        for _ in range(20):  # the transport reports the close on a later loop iteration
            await asyncio.sleep(0.01)
        assert connection() is None
    finally:
        gc.enable()
        await pool.aclose()
