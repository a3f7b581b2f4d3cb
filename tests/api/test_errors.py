"""Every error leaves in OpenAI's envelope, with the status that picks the SDK's exception."""

from __future__ import annotations

import socket
import time

import httpx
import openai
import pytest
from starlette.applications import Starlette
from starlette.routing import Route
from starlette.testclient import TestClient

from relaygate.api import errors
from relaygate.api.middleware import RequestIdMiddleware
from tests.fakes.openai import API_KEY
from tests.support.gateway import RunningGateway

HELLO = [{"role": "user", "content": "hello"}]


def _envelope(response: httpx.Response) -> dict[str, object]:
    body = response.json()
    assert set(body) == {"error"}
    assert set(body["error"]) == {"message", "type", "param", "code"}
    assert isinstance(body["error"]["message"], str) and body["error"]["message"]
    return body["error"]  # type: ignore[no-any-return]


def _post(gateway: RunningGateway, body: object, **headers: str) -> httpx.Response:
    return httpx.post(
        gateway.v1 + "/chat/completions",
        json=body,
        headers={"Authorization": f"Bearer {gateway.key}", **headers},
    )


@pytest.mark.parametrize(
    "headers",
    [
        {},
        {"Authorization": "Bearer nope"},
        {"Authorization": "Basic abc"},
        {"Authorization": "Bearer"},
        {"api-key": "wrong"},
    ],
)
def test_missing_or_bad_key_is_401(gateway: RunningGateway, headers: dict[str, str]) -> None:
    response = httpx.post(
        gateway.v1 + "/chat/completions", headers=headers, json={"model": "fast", "messages": HELLO}
    )
    assert response.status_code == 401
    error = _envelope(response)
    assert error["message"] == "invalid or missing credentials"


def test_every_data_plane_endpoint_needs_a_key(gateway: RunningGateway) -> None:
    assert httpx.get(gateway.v1 + "/models").status_code == 401
    assert httpx.get(gateway.v1 + "/models/fast").status_code == 401
    assert httpx.post(gateway.v1 + "/embeddings", json={}).status_code == 401
    assert httpx.post(gateway.v1 + "/chat/completions", json={}).status_code == 401


def test_azure_style_api_key_header_is_accepted(gateway: RunningGateway) -> None:
    response = httpx.get(gateway.v1 + "/models", headers={"api-key": gateway.key})
    assert response.status_code == 200


def test_sdk_raises_authentication_error(gateway: RunningGateway) -> None:
    bad = openai.OpenAI(base_url=gateway.v1, api_key="rg_live_wrong", max_retries=0)
    with pytest.raises(openai.AuthenticationError):
        bad.chat.completions.create(model="fast", messages=HELLO)  # type: ignore[arg-type]


def test_admin_key_cannot_use_the_data_plane(gateway: RunningGateway) -> None:
    admin = openai.OpenAI(base_url=gateway.v1, api_key=gateway.admin_key, max_retries=0)
    with pytest.raises(openai.PermissionDeniedError):
        admin.models.list()


def test_unknown_model_is_404(client: openai.OpenAI) -> None:
    with pytest.raises(openai.NotFoundError) as info:
        client.chat.completions.create(model="gpt-9-ultra", messages=HELLO)  # type: ignore[arg-type]
    assert info.value.code == "model_not_found"
    with pytest.raises(openai.NotFoundError):
        client.models.retrieve("gpt-9-ultra")


def test_unknown_endpoint_and_method(gateway: RunningGateway) -> None:
    response = httpx.get(gateway.v1 + "/nothing-here", headers={"Authorization": "Bearer x"})
    assert response.status_code == 404
    _envelope(response)
    response = httpx.get(gateway.v1 + "/chat/completions")
    assert response.status_code == 405
    assert _envelope(response)["type"] == "invalid_request_error"
    assert response.headers["allow"] == "POST"


@pytest.mark.parametrize(
    ("body", "param"),
    [
        ({"messages": HELLO}, "model"),
        ({"model": 7, "messages": HELLO}, "model"),
        ({"model": "fast"}, "messages"),
        ({"model": "fast", "messages": []}, "messages"),
        ({"model": "fast", "messages": ["hi"]}, "messages[0]"),
        ({"model": "fast", "messages": [{"role": "wizard", "content": "x"}]}, "messages[0].role"),
        ({"model": "fast", "messages": [{"role": "user", "content": 5}]}, "messages[0].content"),
        ({"model": "fast", "messages": HELLO, "stream": "yes"}, "stream"),
        ({"model": "fast", "messages": HELLO, "max_tokens": 0}, "max_tokens"),
        ({"model": "fast", "messages": HELLO, "max_tokens": True}, "max_tokens"),
        ({"model": "fast", "messages": HELLO, "tools": {"a": 1}}, "tools"),
        (
            {"model": "fast", "messages": HELLO, "response_format": {"type": "xml"}},
            "response_format",
        ),
        ({"model": "fast", "messages": HELLO, "user": 5}, "user"),
    ],
)
def test_invalid_bodies_are_400_naming_the_param(
    gateway: RunningGateway, body: dict[str, object], param: str
) -> None:
    response = _post(gateway, body)
    assert response.status_code == 400
    assert _envelope(response)["param"] == param


@pytest.mark.parametrize("raw", [b"{not json", b"[1, 2]", b"", b"\xff\xfe", b'"string"'])
def test_malformed_json_is_400(gateway: RunningGateway, raw: bytes) -> None:
    response = httpx.post(
        gateway.v1 + "/chat/completions",
        content=raw,
        headers={"Authorization": f"Bearer {gateway.key}", "Content-Type": "application/json"},
    )
    assert response.status_code == 400
    _envelope(response)


def test_sdk_raises_bad_request(client: openai.OpenAI) -> None:
    with pytest.raises(openai.BadRequestError):
        client.chat.completions.create(model="fast", messages=[])


def test_capability_mismatch_is_400(client: openai.OpenAI) -> None:
    with pytest.raises(openai.BadRequestError) as info:
        client.chat.completions.create(
            model="fast",
            messages=[
                {
                    "role": "user",
                    "content": [
                        {"type": "image_url", "image_url": {"url": "https://example.com/cat.png"}}
                    ],
                }
            ],
        )
    assert "vision" in info.value.message
    with pytest.raises(openai.BadRequestError):
        client.embeddings.create(model="fast", input="chat models do not embed")


def test_oversized_body_is_413(gateway: RunningGateway) -> None:
    huge = {"model": "fast", "messages": [{"role": "user", "content": "x" * 70_000}]}
    response = _post(gateway, huge)
    assert response.status_code == 413
    assert _envelope(response)["code"] == "request_too_large"


def test_oversized_chunked_body_is_413(gateway: RunningGateway) -> None:
    def chunks():  # type: ignore[no-untyped-def]
        yield b'{"model": "fast", "messages": [{"role": "user", "content": "'
        for _ in range(100):
            yield b"x" * 1000
        yield b'"}]}'

    response = httpx.post(
        gateway.v1 + "/chat/completions",
        content=chunks(),
        headers={"Authorization": f"Bearer {gateway.key}"},
    )
    assert response.status_code == 413


def test_upstream_errors_map_to_sdk_classes(client: openai.OpenAI) -> None:
    with pytest.raises(openai.RateLimitError) as limited:
        client.chat.completions.create(model="fakeoai/gpt-429", messages=HELLO)
    assert limited.value.response.headers["retry-after"] == "7"
    with pytest.raises(openai.InternalServerError) as failed:
        client.chat.completions.create(model="fakeoai/gpt-500", messages=HELLO)
    assert failed.value.status_code == 502
    with pytest.raises(openai.UnprocessableEntityError):
        client.chat.completions.create(model="fakeoai/gpt-422", messages=HELLO)
    with pytest.raises(openai.InternalServerError) as redirect:
        client.chat.completions.create(model="fakeoai/gpt-redirect", messages=HELLO)
    assert "redirect" in redirect.value.message


def test_upstream_auth_failure_hides_the_provider_message(client: openai.OpenAI) -> None:
    with pytest.raises(openai.InternalServerError) as info:
        client.chat.completions.create(model="fakeoai/gpt-401", messages=HELLO)
    assert info.value.status_code == 502
    assert "sk-" not in info.value.message and API_KEY not in str(info.value.body)


def test_simulated_faults(client: openai.OpenAI) -> None:
    with pytest.raises(openai.RateLimitError) as limited:
        client.chat.completions.create(
            model="fast", messages=HELLO, metadata={"simulator_fault": "rate_limit"}
        )
    assert "retry-after" in limited.value.response.headers
    with pytest.raises(openai.InternalServerError):
        client.chat.completions.create(
            model="fast", messages=HELLO, metadata={"simulator_fault": "server_error"}
        )


def test_unreachable_provider_is_503(tmp_path, gateway: RunningGateway) -> None:  # type: ignore[no-untyped-def]
    from tests.support.gateway import start_gateway

    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        dead_port = sock.getsockname()[1]
    config = {
        "providers": [
            {
                "name": "gone",
                "type": "openai_compatible",
                "base_url": f"http://127.0.0.1:{dead_port}/v1",
                "models": [{"name": "m"}],
            }
        ]
    }
    other = start_gateway(tmp_path, config)
    try:
        response = httpx.post(
            other.v1 + "/chat/completions",
            headers={"Authorization": f"Bearer {other.key}"},
            json={"model": "m", "messages": HELLO},
        )
        assert response.status_code == 503
        assert f"{dead_port}" not in response.text  # no upstream URL in errors
    finally:
        other.stop()


def test_upstream_timeout_is_504(tmp_path, fake_openai) -> None:  # type: ignore[no-untyped-def]
    from tests.support.gateway import start_gateway

    _, url = fake_openai
    config = {
        "providers": [
            {
                "name": "slow",
                "type": "openai_compatible",
                "base_url": url + "/v1",
                "api_key": "env:K",
                "timeouts": {"first_byte": 0.5},
                "models": [{"name": "gpt-slow"}],
            }
        ]
    }
    other = start_gateway(tmp_path, config, env={"K": API_KEY})
    try:
        started = time.monotonic()
        response = httpx.post(
            other.v1 + "/chat/completions",
            headers={"Authorization": f"Bearer {other.key}"},
            json={"model": "gpt-slow", "messages": HELLO, "metadata": {"delay": "5"}},
            timeout=10,
        )
        assert response.status_code == 504
        assert time.monotonic() - started < 3
        _envelope(response)
    finally:
        other.stop()


def test_slow_request_body_is_408(gateway: RunningGateway) -> None:
    host, port = gateway.base_url.removeprefix("http://").split(":")
    with socket.create_connection((host, int(port))) as sock:
        sock.sendall(
            b"POST /v1/chat/completions HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n"
            + f"Authorization: Bearer {gateway.key}\r\nContent-Length: 100\r\n\r\n".encode()
            + b'{"model":'
        )
        sock.settimeout(40)
        answer = sock.recv(65536)
    assert answer.startswith(b"HTTP/1.1 408")


def test_unexpected_errors_are_500_without_details() -> None:
    async def boom(_request):  # type: ignore[no-untyped-def]
        raise RuntimeError("secret detail sk-live-123 /home/path")

    app = Starlette(
        routes=[Route("/boom", boom)],
        middleware=[],
        exception_handlers={Exception: errors.unexpected_error},
    )
    # Wrapped as create_app wraps the real app; the error must not escape to the server.
    client = TestClient(RequestIdMiddleware(app), raise_server_exceptions=True)
    response = client.get("/boom")
    assert response.status_code == 500
    assert "secret detail" not in response.text and "Traceback" not in response.text
    assert response.json()["error"]["type"] == "server_error"
    assert response.headers["x-request-id"] in response.json()["error"]["message"]
