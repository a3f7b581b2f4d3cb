"""Routing as a client of a real gateway process sees it: headers, classification, cooldowns,
deadlines. Upstreams: the fake OpenAI server (429 with Retry-After, 500s, slow answers)."""

from __future__ import annotations

import time
from collections.abc import Iterator
from typing import Any

import httpx
import openai
import pytest

from tests.fakes.openai import API_KEY, FakeOpenAI
from tests.support.gateway import RunningGateway, start_gateway


def _model(name: str, **extra: Any) -> dict[str, Any]:
    return {"name": name, "capabilities": ["chat", "streaming"], **extra}


@pytest.fixture(scope="module")
def gw(
    tmp_path_factory: pytest.TempPathFactory, fake_openai: tuple[FakeOpenAI, str]
) -> Iterator[RunningGateway]:
    base = fake_openai[1] + "/v1"

    def provider(name: str, models: list[dict[str, Any]]) -> dict[str, Any]:
        return {
            "name": name,
            "type": "openai_compatible",
            "base_url": base,
            "api_key": "env:FAKE_OPENAI_KEY",
            "models": models,
        }

    config = {
        "routing": {
            "debug_header": True,
            "breaker": {"consecutive_failures": 2, "cooldown_s": 30},
        },
        "providers": [
            {"name": "simulator", "type": "simulator", "models": [{"name": "sim"}]},
            provider("pricey", [_model("gpt-echo", input_price=30.0, output_price=60.0)]),
            provider("thrifty", [_model("gpt-echo", input_price=0.1, output_price=0.4)]),
            provider("flaky", [_model("gpt-429"), _model("gpt-500"), _model("gpt-slow")]),
        ],
        "routes": [
            {"name": "echo", "targets": ["pricey/gpt-echo", "thrifty/gpt-echo"]},
            {"name": "cheap", "targets": ["thrifty/gpt-echo"]},
            {"name": "smart", "targets": ["pricey/gpt-echo"]},
            {"name": "auto", "classify": {"simple": "cheap", "complex": "smart"}},
            {"name": "limited", "targets": ["flaky/gpt-429"]},
            {"name": "shaky", "targets": ["flaky/gpt-500", "thrifty/gpt-echo"]},
        ],
    }
    running = start_gateway(
        tmp_path_factory.mktemp("routing"), config, env={"FAKE_OPENAI_KEY": API_KEY}
    )
    yield running
    running.stop()


def _post(gw: RunningGateway, model: str, text: str = "hello", **extra: Any) -> httpx.Response:
    headers = {"Authorization": f"Bearer {gw.key}", **extra.pop("headers", {})}
    body = {"model": model, "messages": [{"role": "user", "content": text}], **extra}
    return httpx.post(gw.v1 + "/chat/completions", json=body, headers=headers, timeout=30)


def test_the_decision_is_in_the_headers_streaming_included(gw: RunningGateway) -> None:
    for stream in (False, True):
        response = _post(gw, "echo", stream=stream)
        assert response.status_code == 200, response.text
        h = response.headers
        # Same model, same health, 300x cheaper: the price decides.
        assert (h["x-relaygate-route"], h["x-relaygate-provider"]) == ("echo", "thrifty")
        assert (h["x-relaygate-model"], h["x-relaygate-attempts"]) == ("gpt-echo", "1")
        assert "thrifty/gpt-echo=" in h["x-relaygate-route-debug"]
        assert "pricey/gpt-echo=" in h["x-relaygate-route-debug"]


def test_auto_sends_simple_prompts_to_cheap_and_complex_ones_to_smart(
    gw: RunningGateway,
) -> None:
    simple = _post(gw, "auto", "What is the capital of France?")
    assert simple.headers["x-relaygate-complexity"] == "simple"
    assert simple.headers["x-relaygate-provider"] == "thrifty"
    hard = _post(
        gw,
        "auto",
        "Design a sharded rate limiter for 12 replicas, compare token bucket and GCRA,"
        " and explain the failure modes step by step.",
    )
    assert hard.headers["x-relaygate-complexity"] == "complex"
    assert hard.headers["x-relaygate-provider"] == "pricey"
    assert hard.headers["x-relaygate-route"] == "smart"  # the route that served it


def test_a_rate_limited_single_deployment_cools_down_and_fails_fast(gw: RunningGateway) -> None:
    first = _post(gw, "limited")
    assert first.status_code == 429
    # The provider said Retry-After: 7. The circuit is open: the next request is not sent.
    started = time.monotonic()
    second = _post(gw, "limited")
    assert second.status_code == 503, second.text
    assert second.json()["error"]["code"] == "all_deployments_cooling_down"
    assert 1 <= int(second.headers["retry-after"]) <= 7
    assert time.monotonic() - started < 1


def test_failover_moves_to_a_healthy_deployment(gw: RunningGateway) -> None:
    response = _post(gw, "shaky")
    assert response.status_code == 200
    assert response.headers["x-relaygate-provider"] == "thrifty"
    assert response.headers["x-relaygate-attempts"] in {"1", "2"}


def test_the_clients_timeout_header_bounds_the_request(gw: RunningGateway) -> None:
    client = openai.OpenAI(base_url=gw.v1, api_key=gw.key, max_retries=0, timeout=30)
    started = time.monotonic()
    with pytest.raises(openai.APIStatusError) as info:
        client.chat.completions.create(
            model="flaky/gpt-slow",
            messages=[{"role": "user", "content": "x"}],
            extra_headers={"x-relaygate-timeout-ms": "800"},
        )
    assert info.value.status_code == 504
    assert time.monotonic() - started < 5


def test_a_bad_cost_cap_is_refused_and_a_tight_one_filters(gw: RunningGateway) -> None:
    bad = _post(gw, "echo", headers={"x-relaygate-max-cost-usd": "free"})
    assert bad.status_code == 400 and bad.json()["error"]["param"] == "x-relaygate-max-cost-usd"
    tight = _post(gw, "smart", headers={"x-relaygate-max-cost-usd": "0.000001"})
    assert tight.status_code == 400 and tight.json()["error"]["code"] == "cost_cap_exceeded"
