"""Job results delivered by signed webhooks, as a WordPress receiver sees them: verified by the
official standardwebhooks package, one message id across retries, redirects not followed, 410
disabling the endpoint, SSRF refusals, the delivery log, manual redelivery and rotation."""

from __future__ import annotations

import asyncio
import ipaddress
import time
from collections.abc import Iterator
from typing import Any

import httpx
import orjson
import pytest
from standardwebhooks.webhooks import Webhook

from relaygate.webhooks import schedule, sender
from relaygate.webhooks.ssrf import Destination
from tests.fakes.openai import API_KEY, FakeOpenAI
from tests.jobs.helpers import chat_job, create, jobs_config, wait_finished
from tests.support.admin import Admin
from tests.support.gateway import RunningGateway, start_gateway
from tests.support.servers import serve_in_thread
from tests.webhooks.receiver import MARKER, Receiver

TENANT = "default"


@pytest.fixture(scope="module")
def receiver() -> Iterator[tuple[Receiver, str]]:
    hooks = Receiver()
    with serve_in_thread(hooks.app()) as url:
        yield hooks, url


@pytest.fixture(scope="module")
def gw(
    tmp_path_factory: pytest.TempPathFactory, fake_openai: tuple[FakeOpenAI, str]
) -> Iterator[RunningGateway]:
    config = jobs_config(fake_openai[1])
    config["webhooks"] = {
        "attempt_timeout_s": 1,
        "poll_interval_s": 0.1,
        "schedule_s": [0.3, 0.3, 0.3],
    }
    running = start_gateway(
        tmp_path_factory.mktemp("webhooks"), config, env={"FAKE_OPENAI_KEY": API_KEY}
    )
    yield running
    running.stop()


def _endpoint(gw: RunningGateway, url: str, private: bool = True) -> dict[str, Any]:
    body: dict[str, Any] = {"url": url}
    if private:
        body["allow_private"] = ["127.0.0.1/32"]
    created: dict[str, Any] = Admin(gw).call("POST", f"/tenants/{TENANT}/webhook-endpoints", body)
    return created


def _wait(predicate: Any, timeout: float = 10) -> None:
    deadline = time.monotonic() + timeout
    while not predicate():
        assert time.monotonic() < deadline, "timed out"
        time.sleep(0.05)


def _messages(gw: RunningGateway, endpoint_id: str) -> list[dict[str, Any]]:
    listing = Admin(gw).call("GET", f"/tenants/{TENANT}/webhook-endpoints/{endpoint_id}/messages")
    return list(listing["data"])


def _status(gw: RunningGateway, endpoint_id: str) -> str | None:
    messages = _messages(gw, endpoint_id)
    return str(messages[0]["status"]) if messages else None


def _attempts(gw: RunningGateway, message_id: str) -> list[dict[str, Any]]:
    listing = Admin(gw).call("GET", f"/tenants/{TENANT}/webhook-messages/{message_id}/attempts")
    return list(listing["data"])


def test_a_finished_job_is_delivered_signed_and_verifiable(
    gw: RunningGateway, receiver: tuple[Receiver, str]
) -> None:
    hooks, url = receiver
    endpoint = _endpoint(gw, url + "/ok")
    assert endpoint["secret"].startswith("whsec_")
    job = create(gw, chat_job(text="deliver me", callback_url=url + "/ok/post/7")).json()
    _wait(lambda: hooks.to("/ok/post/7"))
    delivery = hooks.to("/ok/post/7")[0]
    event = Webhook(endpoint["secret"]).verify(delivery.body, delivery.headers)
    assert event["type"] == "job.succeeded"
    assert event["data"]["id"] == job["id"]
    assert event["data"]["result"]["choices"][0]["message"]["content"] == "echo: deliver me"
    assert delivery.headers["webhook-id"] == "msg_" + job["id"].removeprefix("job_")
    _wait(
        lambda: (
            _messages(gw, endpoint["id"])
            and _messages(gw, endpoint["id"])[0]["status"] == "delivered"
        )
    )


def test_retries_carry_the_same_message_id_and_a_fresh_signature(
    gw: RunningGateway, receiver: tuple[Receiver, str]
) -> None:
    hooks, url = receiver
    endpoint = _endpoint(gw, url + "/flaky/2")
    job = create(gw, chat_job(callback_url=url + "/flaky/2")).json()
    wait_finished(gw, job["id"])
    _wait(lambda: len(hooks.to("/flaky/2")) == 3)
    deliveries = hooks.to("/flaky/2")
    assert len({d.headers["webhook-id"] for d in deliveries}) == 1
    for delivery in deliveries:  # every attempt verifies on its own
        Webhook(endpoint["secret"]).verify(delivery.body, delivery.headers)
    message_id = deliveries[0].headers["webhook-id"]
    _wait(
        lambda: [a["outcome"] for a in _attempts(gw, message_id)] == ["retry", "retry", "delivered"]
    )
    log = _attempts(gw, message_id)
    assert [a["status_code"] for a in log] == [500, 500, 200]
    assert [a["outcome"] for a in log] == ["retry", "retry", "delivered"]
    assert MARKER not in orjson.dumps(log).decode()
    assert MARKER not in gw.logs()


def test_redirects_are_failures_and_never_followed(
    gw: RunningGateway, receiver: tuple[Receiver, str]
) -> None:
    hooks, url = receiver
    endpoint = _endpoint(gw, url + "/redirect")
    create(gw, chat_job(callback_url=url + "/redirect"))
    _wait(
        lambda: (
            _messages(gw, endpoint["id"]) and _messages(gw, endpoint["id"])[0]["status"] == "dead"
        )
    )
    assert len(hooks.to("/redirect")) == 4  # the first attempt and three retries
    assert hooks.to("/ok/after-redirect") == []
    message = _messages(gw, endpoint["id"])[0]
    assert message["last_error"] == "redirect 302 not followed"


def test_410_disables_the_endpoint(gw: RunningGateway, receiver: tuple[Receiver, str]) -> None:
    hooks, url = receiver
    endpoint = _endpoint(gw, url + "/gone")
    create(gw, chat_job(callback_url=url + "/gone"))
    _wait(lambda: hooks.to("/gone"))
    admin = Admin(gw)

    def disabled() -> bool:
        rows = admin.call("GET", f"/tenants/{TENANT}/webhook-endpoints")["data"]
        return any(r["id"] == endpoint["id"] and r["disabled_at"] for r in rows)

    _wait(disabled)
    refused = create(gw, chat_job(callback_url=url + "/gone"))
    assert refused.status_code == 400 and refused.json()["error"]["param"] == "callback_url"


def test_a_loopback_receiver_is_refused_at_registration_and_at_delivery(
    gw: RunningGateway, receiver: tuple[Receiver, str]
) -> None:
    hooks, url = receiver
    refused = httpx.post(
        f"{gw.base_url}/admin/v1/tenants/{TENANT}/webhook-endpoints",
        json={"url": url + "/ok/private"},
        headers=Admin(gw).headers,
    )
    assert refused.status_code == 400 and refused.json()["error"]["code"] == "unsafe_destination"
    assert "loopback" in refused.json()["error"]["message"]
    # The delivery-time check reads the host the same way: `127.1` is 127.0.0.1, refused
    # unless opened, and once opened the connection goes to the vetted address.
    port = url.rsplit(":", 1)[1]
    odd = f"http://127.1:{port}/ok/private"
    outcome = asyncio.run(sender.deliver(odd, b"{}", {}, destination=Destination(), timeout_s=1))
    assert outcome.kind == "failed" and outcome.error is not None
    assert outcome.error.startswith("unsafe destination: 127.1 (127.0.0.1): loopback")
    assert hooks.to("/ok/private") == []
    opened = Destination(allow_private=frozenset({ipaddress.ip_network("127.0.0.1/32")}))
    delivered = asyncio.run(sender.deliver(odd, b"{}", {}, destination=opened, timeout_s=1))
    assert delivered.kind == "delivered" and len(hooks.to("/ok/private")) == 1


def test_manual_redelivery_sends_the_same_message_again(
    gw: RunningGateway, receiver: tuple[Receiver, str]
) -> None:
    hooks, url = receiver
    endpoint = _endpoint(gw, url + "/ok/again")
    create(gw, chat_job(callback_url=url + "/ok/again"))
    _wait(lambda: len(hooks.to("/ok/again")) == 1)
    message_id = hooks.to("/ok/again")[0].headers["webhook-id"]
    _wait(lambda: _status(gw, endpoint["id"]) == "delivered")
    Admin(gw).call("POST", f"/tenants/{TENANT}/webhook-messages/{message_id}/redeliver")
    _wait(lambda: len(hooks.to("/ok/again")) == 2)
    assert hooks.to("/ok/again")[1].headers["webhook-id"] == message_id


def test_during_a_rotation_both_secrets_verify(
    gw: RunningGateway, receiver: tuple[Receiver, str]
) -> None:
    hooks, url = receiver
    endpoint = _endpoint(gw, url + "/ok/rotate")
    rotated = Admin(gw).call(
        "POST",
        f"/tenants/{TENANT}/webhook-endpoints/{endpoint['id']}/rotate",
        {"overlap_s": 3600},
    )
    assert rotated["secret"] != endpoint["secret"]
    create(gw, chat_job(callback_url=url + "/ok/rotate"))
    _wait(lambda: hooks.to("/ok/rotate"))
    delivery = hooks.to("/ok/rotate")[0]
    for secret in (endpoint["secret"], rotated["secret"]):
        Webhook(secret).verify(delivery.body, delivery.headers)
    listed = Admin(gw).call("GET", f"/tenants/{TENANT}/webhook-endpoints")
    assert all(r["secret"] is None for r in listed["data"])
    assert endpoint["secret"] not in gw.logs() and rotated["secret"] not in gw.logs()


def test_endpoint_urls_are_checked(gw: RunningGateway) -> None:
    for bad in ("ftp://example.com/x", "https://user:pw@example.com/x", "https:///nohost"):
        response = httpx.post(
            f"{gw.base_url}/admin/v1/tenants/{TENANT}/webhook-endpoints",
            json={"url": bad},
            headers=Admin(gw).headers,
        )
        assert response.status_code in (400, 422), (bad, response.text)


def _dead_letter_log(
    gw: RunningGateway, receiver: tuple[Receiver, str], path: str
) -> list[dict[str, Any]]:
    """Deliver a job's result to `path` until the message is dead; its attempts."""
    _hooks, url = receiver
    endpoint = _endpoint(gw, url + path)
    create(gw, chat_job(callback_url=url + path))
    _wait(lambda: _status(gw, endpoint["id"]) == "dead", timeout=20)
    return _attempts(gw, _messages(gw, endpoint["id"])[0]["id"])


def test_a_receiver_slower_than_the_attempt_timeout_is_cut_off_and_retried(
    gw: RunningGateway, receiver: tuple[Receiver, str]
) -> None:
    log = _dead_letter_log(gw, receiver, "/slow")  # it sleeps 5 s; attempt_timeout_s is 1
    assert [a["outcome"] for a in log] == ["retry"] * 4
    assert all(a["status_code"] is None and a["error"] == "timeout" for a in log)
    assert all(900 <= a["latency_ms"] < 2500 for a in log)


def test_a_429_is_retried_after_its_retry_after(
    gw: RunningGateway, receiver: tuple[Receiver, str]
) -> None:
    log = _dead_letter_log(gw, receiver, "/throttle")  # 429 with Retry-After: 1
    assert [(a["status_code"], a["outcome"]) for a in log] == [(429, "retry")] * 4
    # The sender hands the receiver's Retry-After to the schedule, which stretches the next
    # step up to twice its length (here 0.3 s -> 0.6 s).
    private = Destination(allow_private=frozenset({ipaddress.ip_network("127.0.0.1/32")}))
    outcome = asyncio.run(
        sender.deliver(receiver[1] + "/throttle", b"{}", {}, destination=private, timeout_s=1)
    )
    assert (outcome.kind, outcome.status, outcome.retry_after) == ("retry", 429, "1")
    assert schedule.honour_retry_after(0.3, outcome.retry_after) == 0.6
