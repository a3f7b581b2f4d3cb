"""The jobs API as a WordPress site uses it: create, poll (ETag), watch, cancel, list; results
in OpenAI's format, failures, retries, dead letters and tenant isolation."""

from __future__ import annotations

import time
from collections.abc import Iterator

import httpx
import pytest
from openai.types import CreateEmbeddingResponse
from openai.types.chat import ChatCompletion

from tests.fakes.openai import API_KEY, FakeOpenAI
from tests.jobs.helpers import auth, chat_job, create, jobs_config, wait_finished
from tests.support.admin import Admin
from tests.support.gateway import RunningGateway, start_gateway


@pytest.fixture(scope="module")
def gw(
    tmp_path_factory: pytest.TempPathFactory, fake_openai: tuple[FakeOpenAI, str]
) -> Iterator[RunningGateway]:
    running = start_gateway(
        tmp_path_factory.mktemp("jobs"),
        jobs_config(fake_openai[1]),
        env={"FAKE_OPENAI_KEY": API_KEY},
    )
    yield running
    running.stop()


def test_a_job_runs_and_its_result_is_an_openai_chat_completion(gw: RunningGateway) -> None:
    started = time.monotonic()
    response = create(gw, chat_job(text="jobs work", metadata={"post": "42"}))
    assert response.status_code == 202, response.text
    job = response.json()
    assert job["id"].startswith("job_") and job["status"] == "queued"
    assert response.headers["location"] == f"/v1/jobs/{job['id']}"
    assert job["metadata"] == {"post": "42"}
    done = wait_finished(gw, job["id"])
    assert done["status"] == "succeeded", done
    completion = ChatCompletion.model_validate(done["result"])
    assert completion.choices[0].message.content == "echo: jobs work"
    assert done["usage"]["prompt_tokens"] > 0 and done["cost_usd"] > 0
    assert done["attempts"] == 1 and done["finished_at"] >= done["created_at"]
    assert done["route"].endswith("gpt-echo")
    assert time.monotonic() - started < 10


def test_embeddings_jobs_return_openai_embeddings(gw: RunningGateway) -> None:
    payload = {"url": "/v1/embeddings", "body": {"model": "sim-embed", "input": ["a", "b"]}}
    job = create(gw, payload).json()
    done = wait_finished(gw, job["id"])
    assert done["status"] == "succeeded", done
    assert len(CreateEmbeddingResponse.model_validate(done["result"]).data) == 2


def test_an_unchanged_poll_is_a_304_and_server_timing_shows_queue_and_provider(
    gw: RunningGateway,
) -> None:
    job = create(gw, chat_job()).json()
    wait_finished(gw, job["id"])
    first = httpx.get(f"{gw.v1}/jobs/{job['id']}", headers=auth(gw.key))
    tag = first.headers["etag"]
    again = httpx.get(f"{gw.v1}/jobs/{job['id']}", headers=auth(gw.key, **{"If-None-Match": tag}))
    assert again.status_code == 304 and again.content == b""
    timing = first.headers["server-timing"]
    assert "queue;dur=" in timing and "provider;dur=" in timing
    stale = httpx.get(
        f"{gw.v1}/jobs/{job['id']}", headers=auth(gw.key, **{"If-None-Match": '"old"'})
    )
    assert stale.status_code == 200


def test_the_same_idempotency_key_returns_the_same_job_and_another_body_is_a_422(
    gw: RunningGateway,
) -> None:
    first = create(gw, chat_job(text="once"), **{"Idempotency-Key": "order-7"})
    again = create(gw, chat_job(text="once"), **{"Idempotency-Key": "order-7"})
    assert first.status_code == 202 and again.status_code == 200
    assert again.json()["id"] == first.json()["id"]
    other = create(gw, chat_job(text="twice"), **{"Idempotency-Key": "order-7"})
    assert other.status_code == 422
    assert other.json()["error"]["code"] == "idempotency_key_reused"
    fresh = create(gw, chat_job(text="once"), **{"Idempotency-Key": "order-8"})
    assert fresh.status_code == 202 and fresh.json()["id"] != first.json()["id"]


def test_another_tenant_gets_404_on_every_job_route(gw: RunningGateway) -> None:
    admin = Admin(gw)
    other_key = admin.key(admin.tenant())["key"]
    job = create(gw, chat_job()).json()
    for method, path in (
        ("GET", f"/jobs/{job['id']}"),
        ("GET", f"/jobs/{job['id']}/events"),
        ("POST", f"/jobs/{job['id']}/cancel"),
    ):
        response = httpx.request(method, gw.v1 + path, headers=auth(other_key))
        assert response.status_code == 404, (path, response.text)
        assert response.json()["error"]["code"] == "job_not_found"
    listed = httpx.get(gw.v1 + "/jobs", headers=auth(other_key)).json()
    assert job["id"] not in {j["id"] for j in listed["data"]}


def test_a_provider_refusal_fails_at_once_with_its_error(gw: RunningGateway) -> None:
    job = create(gw, chat_job(model="gpt-400")).json()
    done = wait_finished(gw, job["id"])
    assert done["status"] == "failed" and done["attempts"] == 1
    assert done["error"]["code"] == "invalid_value"


def test_upstream_errors_are_retried_then_dead_lettered_with_the_reason(
    gw: RunningGateway,
) -> None:
    job = create(gw, chat_job(model="gpt-500")).json()
    done = wait_finished(gw, job["id"])
    assert done["status"] == "failed" and done["attempts"] == 3
    assert done["error"]["code"] == "retries_exhausted"
    assert "3 attempts" in done["error"]["message"]


def test_cancelling_a_running_job_stops_it(gw: RunningGateway) -> None:
    payload = chat_job(model="gpt-slow")
    payload["body"]["metadata"] = {"delay": "20"}
    job = create(gw, payload).json()
    deadline = time.monotonic() + 10
    while httpx.get(f"{gw.v1}/jobs/{job['id']}", headers=auth(gw.key)).json()["status"] != (
        "running"
    ):
        assert time.monotonic() < deadline
        time.sleep(0.05)
    cancelled = httpx.post(f"{gw.v1}/jobs/{job['id']}/cancel", headers=auth(gw.key))
    assert cancelled.status_code == 200
    done = wait_finished(gw, job["id"], timeout=5)
    assert done["status"] == "cancelled"
    again = httpx.post(f"{gw.v1}/jobs/{job['id']}/cancel", headers=auth(gw.key))
    assert again.status_code == 409


def test_events_stream_each_change_and_end_with_the_final_state(gw: RunningGateway) -> None:
    # The fake's slow model answers 500 after its delay: the job runs, waits, retries, gives up.
    payload = chat_job(model="gpt-slow")
    payload["body"]["metadata"] = {"delay": "0.6"}
    job = create(gw, payload).json()
    statuses, versions = [], []
    with httpx.stream(
        "GET", f"{gw.v1}/jobs/{job['id']}/events", headers=auth(gw.key), timeout=20
    ) as stream:
        assert stream.headers["content-type"].startswith("text/event-stream")
        for line in stream.iter_lines():
            if line.startswith("id: "):
                versions.append(int(line[4:]))
            if line.startswith("data: "):
                statuses.append(httpx.Response(200, content=line[6:]).json()["status"])
    # Changes between two polls are coalesced; the ids (job versions) show the order.
    assert statuses[-1] == "failed" and "running" in statuses
    assert len(statuses) >= 3 and versions == sorted(set(versions))


def test_listing_filters_by_status_and_pages(gw: RunningGateway) -> None:
    admin = Admin(gw)
    key = admin.key(admin.tenant())["key"]
    ids = [create(gw, chat_job(), key=key).json()["id"] for _ in range(3)]
    for job_id in ids:
        wait_finished(gw, job_id, key=key)
    page = httpx.get(gw.v1 + "/jobs?limit=2", headers=auth(key)).json()
    assert page["has_more"] is True and [j["id"] for j in page["data"]] == ids[::-1][:2]
    rest = httpx.get(f"{gw.v1}/jobs?limit=2&after={page['last_id']}", headers=auth(key)).json()
    assert [j["id"] for j in rest["data"]] == [ids[0]] and rest["has_more"] is False
    succeeded = httpx.get(gw.v1 + "/jobs?status=succeeded", headers=auth(key)).json()
    assert len(succeeded["data"]) == 3
    assert httpx.get(gw.v1 + "/jobs?status=queued", headers=auth(key)).json()["data"] == []


@pytest.mark.parametrize(
    ("payload", "param"),
    [
        ({"url": "/v1/files", "body": {}}, "url"),
        ({"url": "/v1/chat/completions"}, "body"),
        ({**chat_job(), "surprise": 1}, "surprise"),
        ({"url": "/v1/chat/completions", "body": {"model": "x", "stream": True}}, "body.stream"),
        ({**chat_job(), "metadata": {"k": 1}}, "metadata"),
        ({**chat_job(), "callback_url": "https://example.com/hook"}, "callback_url"),
    ],
)
def test_bad_job_requests_are_400_naming_the_field(
    gw: RunningGateway, payload: dict[str, object], param: str
) -> None:
    response = create(gw, payload)
    assert response.status_code == 400, response.text
    assert response.json()["error"]["param"] == param


def test_jobs_need_credentials(gw: RunningGateway) -> None:
    assert httpx.post(gw.v1 + "/jobs", json=chat_job()).status_code == 401
    assert httpx.get(gw.v1 + "/jobs").status_code == 401
