"""Property-based fuzzing of the data plane from its OpenAPI description (bench/fuzz.py, the
bounded version): no request gives a 5xx, every error is in the envelope, and afterwards the
gateway is healthy and its memory bounded. `python -m bench.fuzz` runs the long version."""

from __future__ import annotations

from collections.abc import Iterator

import httpx
import pytest
import requests
import schemathesis
import yaml

from bench import fuzz
from relaygate.api.openapi import description
from tests.support.gateway import RunningGateway, start_gateway

# The operations that take a JSON body get most of the examples.
BODIES = {"POST /v1/chat/completions", "POST /v1/embeddings", "POST /v1/jobs", "POST /v1/batches"}
RSS_GROWTH_MB = 100


@pytest.fixture(scope="module")
def gw(tmp_path_factory: pytest.TempPathFactory) -> Iterator[RunningGateway]:
    running = start_gateway(tmp_path_factory.mktemp("fuzz"), yaml.safe_load(fuzz.CONFIG))
    yield running
    running.stop()


def test_the_description_is_served_and_names_every_data_plane_endpoint(
    gw: RunningGateway,
) -> None:
    served = httpx.get(gw.v1 + "/openapi.json")
    assert served.status_code == 200
    assert served.json() == description()
    paths = set(served.json()["paths"])
    for route in (
        "/v1/chat/completions",
        "/v1/embeddings",
        "/v1/models",
        "/v1/jobs",
        "/v1/files",
        "/v1/batches",
        "/v1/streams/{stream_id}",
    ):
        assert route in paths


def test_no_generated_request_gives_a_5xx_or_an_error_outside_the_envelope(
    gw: RunningGateway,
) -> None:
    for _ in range(5):  # warm up: the first requests load what every later one shares
        httpx.post(
            gw.v1 + "/chat/completions",
            json={"model": "fast", "messages": [{"role": "user", "content": "hi"}]},
            headers={"Authorization": f"Bearer {gw.key}"},
        )
    before = gw.rss()
    figures = fuzz.fuzz(gw.base_url, gw.key, lambda label: 12 if label in BODIES else 1, seed=29)
    after = gw.rss()
    assert figures.violations == [], "\n".join(figures.violations)
    assert figures.examples > 150
    assert {200, 400, 404} <= set(figures.statuses)  # valid and invalid requests both ran
    assert fuzz.healthy(gw.base_url) == []
    assert (after - before) / 2**20 < RSS_GROWTH_MB
    assert "Traceback" not in gw.logs()


def test_the_harness_flags_what_it_must() -> None:
    # A 500, an error outside the envelope and an error that is not JSON are each reported.
    def response(status: int, body: bytes, content_type: str) -> schemathesis.Response:
        request = requests.Request("GET", "http://gateway/v1/models").prepare()
        return schemathesis.Response(
            status, {"content-type": [content_type]}, body, request, 0.0, True
        )

    assert fuzz.problem_with(response(500, b'{"error": {}}', "application/json"))
    assert fuzz.problem_with(response(400, b'{"detail": "x"}', "application/json"))
    assert fuzz.problem_with(response(400, b"Invalid HTTP request received.", "text/plain"))
    envelope = b'{"error": {"message": "m", "type": "t", "param": null, "code": null}}'
    assert fuzz.problem_with(response(400, envelope, "application/json")) is None
    assert fuzz.problem_with(response(200, b"{}", "application/json")) is None
