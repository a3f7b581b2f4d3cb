"""The official OpenAI SDK's batch flow against Relaygate, unchanged: upload a JSONL file,
create a batch, poll it, download the output and error files; validation, cancel, listing,
tenant isolation."""

from __future__ import annotations

import io
import time
from collections.abc import Iterator
from typing import Any

import openai
import orjson
import pytest

from tests.fakes.openai import API_KEY, FakeOpenAI
from tests.jobs.helpers import jobs_config
from tests.support.admin import Admin
from tests.support.gateway import RunningGateway, start_gateway


@pytest.fixture(scope="module")
def gw(
    tmp_path_factory: pytest.TempPathFactory, fake_openai: tuple[FakeOpenAI, str]
) -> Iterator[RunningGateway]:
    config = jobs_config(fake_openai[1])
    config["providers"].append(
        {
            "name": "drip",
            "type": "simulator",
            "simulator": {"ttft_ms": 1500, "tokens_per_s": 1000, "max_reply_tokens": 4},
            "models": [{"name": "slow", "capabilities": ["chat", "streaming"]}],
        }
    )
    running = start_gateway(
        tmp_path_factory.mktemp("batches"), config, env={"FAKE_OPENAI_KEY": API_KEY}
    )
    yield running
    running.stop()


def _client(gw: RunningGateway, key: str | None = None) -> openai.OpenAI:
    return openai.OpenAI(base_url=gw.v1, api_key=key or gw.key, max_retries=0)


def _jsonl(lines: list[dict[str, Any]]) -> bytes:
    return b"\n".join(orjson.dumps(line) for line in lines) + b"\n"


def _line(custom_id: str, model: str = "gpt-echo", text: str = "hi") -> dict[str, Any]:
    return {
        "custom_id": custom_id,
        "method": "POST",
        "url": "/v1/chat/completions",
        "body": {"model": model, "messages": [{"role": "user", "content": text}]},
    }


def _rows(client: openai.OpenAI, file_id: str) -> list[dict[str, Any]]:
    return [orjson.loads(row) for row in client.files.content(file_id).text.splitlines()]


def _upload(client: openai.OpenAI, name: str, content: bytes) -> Any:
    return client.files.create(file=(name, io.BytesIO(content)), purpose="batch")


def _wait(client: openai.OpenAI, batch_id: str, statuses: set[str], timeout: float = 30) -> Any:
    deadline = time.monotonic() + timeout
    while True:
        batch = client.batches.retrieve(batch_id)
        if batch.status in statuses:
            return batch
        assert time.monotonic() < deadline, batch
        time.sleep(0.2)


def test_the_sdk_batch_flow_yields_output_and_error_files(gw: RunningGateway) -> None:
    client = _client(gw)
    lines = [_line(f"req-{i}", text=f"line {i}") for i in range(4)]
    lines.insert(2, _line("req-bad", model="gpt-400"))
    uploaded = client.files.create(file=("input.jsonl", io.BytesIO(_jsonl(lines))), purpose="batch")
    assert uploaded.purpose == "batch" and uploaded.bytes == len(_jsonl(lines))
    batch = client.batches.create(
        input_file_id=uploaded.id,
        endpoint="/v1/chat/completions",
        completion_window="24h",
        metadata={"site": "blog"},
    )
    assert batch.status == "in_progress" and batch.request_counts is not None
    assert batch.request_counts.total == 5
    done = _wait(client, batch.id, {"completed", "failed"})
    assert done.status == "completed" and done.metadata == {"site": "blog"}
    assert done.request_counts is not None
    assert (done.request_counts.completed, done.request_counts.failed) == (4, 1)
    assert done.model_extra is not None and done.model_extra["cost_usd"] > 0
    assert done.output_file_id and done.error_file_id
    output = [
        orjson.loads(row) for row in client.files.content(done.output_file_id).text.splitlines()
    ]
    assert [row["custom_id"] for row in output] == [f"req-{i}" for i in range(4)]
    for i, row in enumerate(output):
        assert row["response"]["status_code"] == 200 and row["error"] is None
        assert row["response"]["body"]["choices"][0]["message"]["content"] == f"echo: line {i}"
    errors = [
        orjson.loads(row) for row in client.files.content(done.error_file_id).text.splitlines()
    ]
    assert [row["custom_id"] for row in errors] == ["req-bad"]
    assert errors[0]["response"]["status_code"] == 400
    assert errors[0]["error"]["code"] == "invalid_value"


def test_a_file_with_bad_lines_fails_the_batch_naming_each_line(gw: RunningGateway) -> None:
    client = _client(gw)
    bad = _jsonl([_line("a"), _line("a"), {"custom_id": "b", "url": "/v1/embeddings", "body": {}}])
    uploaded = client.files.create(
        file=("bad.jsonl", io.BytesIO(bad + b"not json\n")), purpose="batch"
    )
    batch = client.batches.create(
        input_file_id=uploaded.id, endpoint="/v1/chat/completions", completion_window="24h"
    )
    assert batch.status == "failed" and batch.errors is not None
    assert [(e.line, e.param) for e in batch.errors.data or []] == [
        (2, "custom_id"),
        (3, "url"),
        (4, None),
    ]


def test_cancelling_stops_the_lines_not_yet_run(gw: RunningGateway) -> None:
    client = _client(gw)
    lines = [_line(f"slow-{i}", model="drip/slow") for i in range(40)]
    uploaded = client.files.create(file=("slow.jsonl", io.BytesIO(_jsonl(lines))), purpose="batch")
    batch = client.batches.create(
        input_file_id=uploaded.id, endpoint="/v1/chat/completions", completion_window="24h"
    )
    cancelling = client.batches.cancel(batch.id)
    assert cancelling.status in {"cancelling", "cancelled"}
    done = _wait(client, batch.id, {"cancelled"})
    assert done.request_counts is not None
    assert done.request_counts.failed > 0
    assert done.request_counts.completed + done.request_counts.failed == 40
    assert done.error_file_id is not None
    cancelled = _rows(client, done.error_file_id)
    # Lines not started were never run; the few running (jobs.concurrency) were stopped.
    codes = [row["error"]["code"] for row in cancelled]
    assert set(codes) <= {"batch_cancelled", "cancelled"}
    assert codes.count("batch_cancelled") >= 40 - 16
    assert client.batches.cancel(batch.id).status == "cancelled"  # again: answered as it is


def test_listing_and_files_are_tenant_scoped(gw: RunningGateway) -> None:
    client = _client(gw)
    uploaded = client.files.create(
        file=("one.jsonl", io.BytesIO(_jsonl([_line("x")]))), purpose="batch"
    )
    batch = client.batches.create(
        input_file_id=uploaded.id, endpoint="/v1/chat/completions", completion_window="24h"
    )
    assert batch.id in {b.id for b in client.batches.list(limit=100)}
    assert uploaded.id in {f.id for f in client.files.list()}
    assert client.files.retrieve(uploaded.id).filename == "one.jsonl"
    admin = Admin(gw)
    other = _client(gw, admin.key(admin.tenant())["key"])
    with pytest.raises(openai.NotFoundError):
        other.batches.retrieve(batch.id)
    with pytest.raises(openai.NotFoundError):
        other.files.retrieve(uploaded.id)
    with pytest.raises(openai.NotFoundError):
        other.files.content(uploaded.id)
    with pytest.raises(openai.BadRequestError):
        other.batches.create(
            input_file_id=uploaded.id, endpoint="/v1/chat/completions", completion_window="24h"
        )
    assert batch.id not in {b.id for b in other.batches.list()}
    _wait(client, batch.id, {"completed"})
    with pytest.raises(openai.ConflictError):
        client.batches.cancel(batch.id)
    assert client.files.delete(uploaded.id).deleted is True
    with pytest.raises(openai.NotFoundError):
        client.files.retrieve(uploaded.id)


def test_bad_uploads_and_batch_requests_are_400(gw: RunningGateway) -> None:
    client = _client(gw)
    with pytest.raises(openai.BadRequestError, match="purpose"):
        client.files.create(file=("x.jsonl", io.BytesIO(b"{}")), purpose="fine-tune")
    uploaded = client.files.create(
        file=("x.jsonl", io.BytesIO(_jsonl([_line("x")]))), purpose="batch"
    )
    with pytest.raises(openai.BadRequestError, match="completion_window"):
        client.batches.create(
            input_file_id=uploaded.id,
            endpoint="/v1/chat/completions",
            completion_window="1h",  # type: ignore[arg-type]
        )
    with pytest.raises(openai.BadRequestError, match="endpoint"):
        client.batches.create(
            input_file_id=uploaded.id,
            endpoint="/v1/completions",
            completion_window="24h",
        )
