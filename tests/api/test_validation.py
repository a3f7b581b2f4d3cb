"""Malformed requests get a 400 naming the parameter, never a 500; every bound is enforced and
configurable (issue 29, items 2 and 3)."""

from __future__ import annotations

import io
import time
from collections.abc import Iterator
from typing import Any

import httpx
import openai
import orjson
import pytest

from tests.fakes.openai import API_KEY, FakeOpenAI
from tests.support.gateway import RunningGateway, start_gateway, suite_config

HELLO = [{"role": "user", "content": "hello"}]
BARE = [{"role": "user"}]  # the shortest message: many fit in the suite's 64 KiB bodies


def _nested(depth: int) -> Any:
    value: Any = "x"
    for _ in range(depth):
        value = [value]
    return value


def _post(gw: RunningGateway, path: str, body: object) -> httpx.Response:
    return httpx.post(
        gw.v1 + path, json=body, headers={"Authorization": f"Bearer {gw.key}"}, timeout=30
    )


def _error(response: httpx.Response, status: int = 400) -> dict[str, Any]:
    assert response.status_code == status, response.text
    assert response.headers["content-type"].startswith("application/json")
    body = response.json()
    assert set(body) == {"error"} and set(body["error"]) == {"message", "type", "param", "code"}
    return body["error"]  # type: ignore[no-any-return]


CHAT_CASES = [
    # The cases found by the hostile-tenant review.
    pytest.param(
        {"messages": [{"role": "user", "content": [{"type": "text", "text": _nested(300)}]}]},
        "messages",
        id="content-nested-300-deep",
    ),
    pytest.param(
        {"messages": [{"role": "user", "content": "hi", "extra": _nested(100)}]},
        "messages",
        id="message-nested-100-deep",
    ),
    pytest.param(
        {"tools": [{"type": "function", "function": {"name": 5}}]},
        "tools[0].function.name",
        id="tool-name-not-a-string",
    ),
    pytest.param(
        {"response_format": {"type": "json_schema", "json_schema": "not an object"}},
        "response_format.json_schema",
        id="json-schema-not-an-object",
    ),
    pytest.param(
        {"response_format": {"type": "json_schema", "json_schema": {"schema": [1]}}},
        "response_format.json_schema.schema",
        id="json-schema-schema-not-an-object",
    ),
    *(
        pytest.param({"metadata": {key: value}}, f"metadata.{key}", id=f"metadata-{key}-{value}")
        for key in ("simulator_reply_tokens", "simulator_ttft_ms", "simulator_tokens_per_s")
        for value in ("nan", "inf", "-1", "1e400", "many")
    ),
    # Every other field the gateway or an adapter reads.
    pytest.param({"messages": [{"role": ["user"]}]}, "messages[0].role", id="role-a-list"),
    pytest.param({"response_format": {"type": {}}}, "response_format", id="format-type-object"),
    pytest.param({"messages": [{"role": "user", "content": [5]}]}, "messages[0].content[0]"),
    pytest.param(
        {"messages": [{"role": "user", "content": [{"type": 5}]}]}, "messages[0].content[0].type"
    ),
    pytest.param(
        {"messages": [{"role": "user", "content": [{"type": "text", "text": ["a"]}]}]},
        "messages[0].content[0].text",
    ),
    pytest.param(
        {"messages": [{"role": "user", "content": [{"type": "image_url", "image_url": 3}]}]},
        "messages[0].content[0].image_url",
    ),
    pytest.param({"messages": [{"role": "user", "content": "x", "name": 7}]}, "messages[0].name"),
    pytest.param(
        {"messages": [{"role": "assistant", "tool_calls": [{"function": "f"}]}]},
        "messages[0].tool_calls[0].function",
    ),
    pytest.param(
        {"messages": [{"role": "assistant", "tool_calls": [{"function": {"name": 1}}]}]},
        "messages[0].tool_calls[0].function.name",
    ),
    pytest.param(
        {"messages": [{"role": "assistant", "tool_calls": "call"}]}, "messages[0].tool_calls"
    ),
    pytest.param({"tools": [{"type": "function"}]}, "tools[0].function"),
    pytest.param(
        {"tools": [{"function": {"name": "f", "parameters": 3}}]}, "tools[0].function.parameters"
    ),
    pytest.param({"tool_choice": {"type": "function", "function": "f"}}, "tool_choice.function"),
    pytest.param({"tool_choice": "sometimes"}, "tool_choice"),
    pytest.param({"parallel_tool_calls": "yes"}, "parallel_tool_calls"),
    pytest.param({"stop": [1]}, "stop[0]"),
    pytest.param({"stop": 3}, "stop"),
    pytest.param({"temperature": "hot"}, "temperature"),
    pytest.param({"top_p": True}, "top_p"),
    pytest.param({"seed": 1.5}, "seed"),
    pytest.param({"stream_options": {"include_usage": "yes"}}, "stream_options.include_usage"),
    pytest.param({"user": "u" * 257}, "user"),
    pytest.param({"user": "a\x00b"}, "user"),
    pytest.param({"metadata": "simulator_fault"}, "metadata"),
    pytest.param({"metadata": {"simulator_reply_tokens": True}}, "metadata.simulator_reply_tokens"),
    pytest.param({"metadata": {"simulator_ttft_ms": [1]}}, "metadata.simulator_ttft_ms"),
    pytest.param({"model": "m" * 300}, "model"),
    # Bounds (defaults).
    pytest.param({"messages": BARE * 2049}, "messages", id="2049-messages"),
    pytest.param(
        {"tools": [{"type": "function", "function": {"name": f"t{i}"}} for i in range(129)]},
        "tools",
        id="129-tools",
    ),
    pytest.param({"stop": ["s"] * 17}, "stop", id="17-stop-sequences"),
    pytest.param({"n": 129}, "n"),
    pytest.param({"n": 2**63}, "n"),
    pytest.param({"max_tokens": 2**31}, "max_tokens"),
    pytest.param({"max_completion_tokens": 1_048_577}, "max_completion_tokens"),
    pytest.param({"max_tokens": 0}, "max_tokens"),
]


@pytest.mark.parametrize(("change", "param"), CHAT_CASES)
def test_malformed_chat_requests_are_400_naming_the_parameter(
    gateway: RunningGateway, change: dict[str, Any], param: str
) -> None:
    error = _error(
        _post(gateway, "/chat/completions", {"model": "fast", "messages": HELLO, **change})
    )
    assert error["param"] == param
    assert error["type"] == "invalid_request_error"


@pytest.mark.parametrize("stream", [False, True])
def test_malformed_requests_are_refused_before_any_stream_starts(
    gateway: RunningGateway, stream: bool
) -> None:
    body = {
        "model": "fast",
        "messages": HELLO,
        "stream": stream,
        "metadata": {"simulator_tokens_per_s": "nan"},
    }
    assert _error(_post(gateway, "/chat/completions", body))["param"] == (
        "metadata.simulator_tokens_per_s"
    )


EMBEDDING_CASES = [
    pytest.param({"input": [1, "a"]}, "input[1]", id="ids-then-string"),
    pytest.param({"input": ["a", 1]}, "input[1]", id="string-then-id"),
    pytest.param({"input": [[1, 2], "a"]}, "input[1]", id="id-list-then-string"),
    pytest.param({"input": [[1, "a"]]}, "input[0][1]", id="string-in-id-list"),
    pytest.param({"input": [[]]}, "input[0]", id="empty-id-list"),
    pytest.param({"input": [-1]}, "input[0]", id="negative-token-id"),
    pytest.param({"input": [2**40]}, "input[0]", id="token-id-too-large"),
    pytest.param({"input": [True]}, "input", id="boolean"),
    pytest.param({"input": [{"text": "a"}]}, "input", id="object"),
    pytest.param({"input": ["a"] * 2049}, "input", id="2049-inputs"),
    pytest.param({"input": "x", "dimensions": 10**12}, "dimensions", id="dimensions-1e12"),
    pytest.param({"input": "x", "dimensions": 2**63}, "dimensions", id="dimensions-2-63"),
    pytest.param({"input": "x", "dimensions": 4097}, "dimensions", id="dimensions-4097"),
    pytest.param({"input": "x", "dimensions": 1e12}, "dimensions", id="dimensions-float"),
    pytest.param({"input": "x", "user": ["u"]}, "user"),
    pytest.param({"input": "x", "encoding_format": ["float"]}, "encoding_format"),
    pytest.param({"input": "x", "metadata": ["simulator_fault"]}, "metadata"),
    pytest.param({"input": _nested(100)}, "input", id="nested-100-deep"),
]


@pytest.mark.parametrize(("change", "param"), EMBEDDING_CASES)
def test_malformed_embedding_requests_are_400_naming_the_parameter(
    gateway: RunningGateway, change: dict[str, Any], param: str
) -> None:
    error = _error(_post(gateway, "/embeddings", {"model": "simulator/sim-embed", **change}))
    assert error["param"] == param


def test_requests_within_every_bound_still_work(gateway: RunningGateway) -> None:
    tools = [{"type": "function", "function": {"name": f"t{i}"}} for i in range(128)]
    chat = {
        "model": "fakeoai/gpt-echo",  # a context window that 2048 messages fit
        "messages": BARE * 2047 + HELLO,
        "tools": tools,
        "tool_choice": "none",
        "stop": ["zz"] * 16,
        "n": 1,
        "max_tokens": 5,
        "metadata": {"simulator_reply_tokens": "3", "simulator_tokens_per_s": "0"},
        "user": "u" * 256,
        "an_unknown_field": {"passes": [{"through": _nested(40)}]},
    }
    response = _post(gateway, "/chat/completions", chat)
    assert response.status_code == 200, response.text
    embedding = {"model": "simulator/sim-embed", "input": ["a b", "c"], "dimensions": 4096}
    response = _post(gateway, "/embeddings", embedding)
    assert response.status_code == 200, response.text
    assert [len(item["embedding"]) for item in response.json()["data"]] == [4096, 4096]
    tokens = {"model": "simulator/sim-embed", "input": list(range(5000))}
    assert _post(gateway, "/embeddings", tokens).status_code == 200


@pytest.mark.parametrize(
    ("path", "body", "param"),
    [
        ("/jobs", {"url": ["/v1/embeddings"], "body": {}}, "url"),
        (
            "/batches",
            {"endpoint": [[]], "completion_window": "24h", "input_file_id": "f"},
            "endpoint",
        ),
        (
            "/batches",
            {"endpoint": "/v1/embeddings", "completion_window": {}, "input_file_id": "f"},
            "completion_window",
        ),
    ],
)
def test_a_list_or_an_object_where_a_name_is_expected_is_400(
    gateway: RunningGateway, path: str, body: dict[str, Any], param: str
) -> None:
    # Found by the fuzzer: `[] in frozenset()` raises, which was a 500.
    assert _error(_post(gateway, path, body))["param"] == param


@pytest.mark.parametrize(
    "path",
    [
        "/jobs/job_%00x",
        "/jobs/" + "j" * 300,
        "/jobs/%C3%A9",
        "/files/file-%00",
        "/files/" + "f" * 300 + "/content",
        "/batches/batch_%00",
        "/streams/rs_%00",
    ],
)
def test_ids_that_cannot_exist_are_404_without_a_lookup(gateway: RunningGateway, path: str) -> None:
    response = httpx.get(gateway.v1 + path, headers={"Authorization": f"Bearer {gateway.key}"})
    assert response.status_code in {404, 503}  # 503: jobs or streams not enabled
    _error(response, response.status_code)


@pytest.mark.parametrize("path", ["/jobs", "/files", "/batches"])
def test_a_cursor_that_cannot_be_an_id_is_400(gateway: RunningGateway, path: str) -> None:
    response = httpx.get(
        gateway.v1 + path,
        params={"after": "a\x00b"},
        headers={"Authorization": f"Bearer {gateway.key}"},
    )
    if response.status_code != 503:  # jobs not enabled in this configuration
        assert _error(response)["param"] == "after"


# A gateway whose bounds are configured below the defaults, with jobs and batches.
BOUNDS = {
    "max_messages": 2,
    "max_tools": 1,
    "max_stop_sequences": 1,
    "max_n": 2,
    "max_output_tokens": 1000,
    "max_embedding_inputs": 2,
    "max_embedding_dimensions": 8,
    "max_embedding_values": 12,
    "max_depth": 8,
}


@pytest.fixture(scope="module")
def bounded(
    tmp_path_factory: pytest.TempPathFactory, fake_openai: tuple[FakeOpenAI, str]
) -> Iterator[RunningGateway]:
    config = suite_config(fake_openai[1])
    config["bounds"] = BOUNDS
    config["batches"] = {"max_requests": 2}
    config["jobs"] = {"max_result_bytes": 1024, "retry_base_s": 0.1, "retry_max_s": 0.2}
    running = start_gateway(
        tmp_path_factory.mktemp("bounded"), config, env={"FAKE_OPENAI_KEY": API_KEY}
    )
    yield running
    running.stop()


@pytest.mark.parametrize(
    ("path", "change", "param", "bound"),
    [
        ("/chat/completions", {"messages": HELLO * 3}, "messages", 2),
        (
            "/chat/completions",
            {"tools": [{"type": "function", "function": {"name": n}} for n in "ab"]},
            "tools",
            1,
        ),
        ("/chat/completions", {"stop": ["a", "b"]}, "stop", 1),
        ("/chat/completions", {"n": 3}, "n", 2),
        ("/chat/completions", {"max_tokens": 1001}, "max_tokens", 1000),
        (
            "/chat/completions",
            {"metadata": {"simulator_reply_tokens": "1001"}},
            "metadata.simulator_reply_tokens",
            1000,
        ),
        ("/chat/completions", {"x": _nested(8)}, "x", 8),
        ("/embeddings", {"input": ["a", "b", "c"]}, "input", 2),
        ("/embeddings", {"input": "a", "dimensions": 9}, "dimensions", 8),
        ("/embeddings", {"input": ["a", "b"], "dimensions": 8}, "dimensions", 12),
    ],
)
def test_every_bound_is_configurable(
    bounded: RunningGateway,
    path: str,
    change: dict[str, Any],
    param: str,
    bound: int,
) -> None:
    model = "fast" if path == "/chat/completions" else "simulator/sim-embed"
    base = {"model": model, "messages": HELLO} if model == "fast" else {"model": model}
    error = _error(_post(bounded, path, {**base, **change}))
    assert str(bound) in error["message"]
    assert error["param"] == param
    within = {"input": "a", "dimensions": 8} if path == "/embeddings" else {"n": 2}
    assert _post(bounded, path, {**base, **within}).status_code == 200


def test_a_job_body_is_validated_when_the_job_is_created(bounded: RunningGateway) -> None:
    job = {
        "url": "/v1/chat/completions",
        "body": {"model": "fast", "messages": HELLO, "tools": [{"function": {"name": 5}}]},
    }
    error = _error(_post(bounded, "/jobs", job))
    assert error["param"] == "body.tools[0].function.name"
    embeddings = {"url": "/v1/embeddings", "body": {"model": "sim-embed", "input": [1, "a"]}}
    assert _error(_post(bounded, "/jobs", embeddings))["param"] == "body.input[1]"


def test_a_job_answer_larger_than_its_bound_fails_the_job(bounded: RunningGateway) -> None:
    job = {
        "url": "/v1/embeddings",
        "body": {"model": "simulator/sim-embed", "input": "a", "dimensions": 8},
    }
    small = _post(bounded, "/jobs", job)
    reply = {"model": "fast", "messages": HELLO, "metadata": {"simulator_reply_tokens": "500"}}
    large = _post(bounded, "/jobs", {"url": "/v1/chat/completions", "body": reply})
    assert small.status_code == large.status_code == 202
    finished = {
        name: _finished(bounded, r.json()["id"]) for name, r in [("s", small), ("l", large)]
    }
    assert finished["s"]["status"] == "succeeded"
    assert finished["l"]["status"] == "failed"
    assert finished["l"]["error"]["code"] == "result_too_large"
    assert finished["l"]["result"] is None


def _finished(gw: RunningGateway, job_id: str) -> dict[str, Any]:
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        job = httpx.get(f"{gw.v1}/jobs/{job_id}", headers={"Authorization": f"Bearer {gw.key}"})
        if job.json()["status"] in {"succeeded", "failed", "cancelled"}:
            return job.json()  # type: ignore[no-any-return]
        time.sleep(0.1)
    raise AssertionError(f"job {job_id} did not finish")


def test_batch_lines_are_validated_and_counted(bounded: RunningGateway) -> None:
    client = openai.OpenAI(base_url=bounded.v1, api_key=bounded.key, max_retries=0)

    def line(custom_id: str, body: dict[str, Any]) -> bytes:
        request = {"custom_id": custom_id, "method": "POST", "url": "/v1/embeddings", "body": body}
        return orjson.dumps(request) + b"\n"

    good = {"model": "simulator/sim-embed", "input": "a"}
    bad = line("b", {**good, "dimensions": 2**63}) + line("c\x00", good)
    uploaded = client.files.create(file=("bad.jsonl", io.BytesIO(bad)), purpose="batch")
    batch = client.batches.create(
        input_file_id=uploaded.id, endpoint="/v1/embeddings", completion_window="24h"
    )
    assert batch.status == "failed" and batch.errors is not None
    assert [(e.line, e.param) for e in batch.errors.data or []] == [
        (1, "body.dimensions"),
        (2, "custom_id"),
    ]
    many = b"".join(line(str(i), good) for i in range(3))
    uploaded = client.files.create(file=("many.jsonl", io.BytesIO(many)), purpose="batch")
    batch = client.batches.create(
        input_file_id=uploaded.id, endpoint="/v1/embeddings", completion_window="24h"
    )
    assert batch.status == "failed" and batch.errors is not None
    assert "at most 2 requests" in (batch.errors.data or [])[0].message  # type: ignore[operator]
