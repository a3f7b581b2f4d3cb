"""Webhook endpoints through a real gateway on SQLite and PostgreSQL, with a real receiver:
destinations the SSRF guard refuses are refused at registration (every spelling of an address),
duplicates are refused, endpoints can be changed and deleted, and every failed delivery is
logged and shows on the endpoint."""

from __future__ import annotations

import time
import uuid
from collections.abc import Iterator
from typing import Any

import httpx
import pytest

from tests.fakes.openai import API_KEY, FakeOpenAI
from tests.jobs.helpers import chat_job, create, jobs_config, wait_finished
from tests.support.admin import Admin
from tests.support.gateway import RunningGateway, start_gateway
from tests.support.servers import serve_in_thread
from tests.webhooks.receiver import Receiver

TENANT = "default"
LOOPBACK = ["127.0.0.1/32"]

# The SSRF vectors of the research notes, each with what the refusal must name.
REFUSED = [
    ("http://2130706433/hook", "127.0.0.1", "loopback"),
    ("http://0177.0.0.1/hook", "127.0.0.1", "loopback"),
    ("http://127.1/hook", "127.0.0.1", "loopback"),
    ("http://0x7f.1/hook", "127.0.0.1", "loopback"),
    ("http://0x7F000001/hook", "127.0.0.1", "loopback"),
    ("http://127.0.0.1./hook", "127.0.0.1", "loopback"),
    ("http://0/hook", "0.0.0.0", "this-network"),
    ("http://10.1/hook", "10.0.0.1", "private"),
    ("http://0251.0376.0251.0376/latest/meta-data/", "169.254.169.254", "link-local"),
    ("http://169.254.169.254/latest/meta-data/", "169.254.169.254", "link-local"),
    ("http://100.64.0.1/hook", "100.64.0.1", "cgnat"),
    ("http://198.18.0.1/hook", "198.18.0.1", "benchmark"),
    ("http://224.0.0.1/hook", "224.0.0.1", "multicast"),
    ("http://[::1]/hook", "::1", "loopback"),
    ("http://[::ffff:127.0.0.1]/hook", "127.0.0.1", "ipv4-mapped"),
    ("http://[::ffff:7f00:1]/hook", "127.0.0.1", "ipv4-mapped"),
    ("http://[::127.0.0.1]/hook", "127.0.0.1", "ipv4-compatible"),
    ("http://[64:ff9b::a00:1]/hook", "10.0.0.1", "nat64"),
    ("http://[2002:c0a8:101::1]/hook", "192.168.1.1", "6to4"),
    ("http://[2001:0:4136:e378:8000:63bf:3fff:fdd2]/hook", "2001:0:4136", "teredo"),
    ("http://[fd00::1]/hook", "fd00::1", "unique-local"),
    ("http://[fe80::1%25eth0]/hook", "zone ids", "not allowed"),
    ("http://[ff02::1]/hook", "ff02::1", "multicast"),
    ("http://1.2.3.4.5/hook", "1.2.3.4.5", "not a valid IPv4"),
    ("http://localhost:9/hook", "localhost resolves to", "loopback"),
]


@pytest.fixture(scope="module")
def receiver() -> Iterator[tuple[Receiver, str]]:
    hooks = Receiver()
    with serve_in_thread(hooks.app()) as url:
        yield hooks, url


@pytest.fixture(scope="module", params=["sqlite", "postgresql"])
def gw(
    request: pytest.FixtureRequest,
    tmp_path_factory: pytest.TempPathFactory,
    fake_openai: tuple[FakeOpenAI, str],
) -> Iterator[RunningGateway]:
    config = jobs_config(fake_openai[1])
    config["webhooks"] = {"attempt_timeout_s": 1, "poll_interval_s": 0.1, "schedule_s": [0.3] * 3}
    tmp = tmp_path_factory.mktemp(f"endpoints-{request.param}")
    if request.param == "sqlite":
        running = start_gateway(tmp, config, env={"FAKE_OPENAI_KEY": API_KEY})
        yield running
        running.stop()
        return
    from tests.support.services import postgres_database

    with postgres_database() as url:
        config["server"]["database_url"] = url
        running = start_gateway(tmp, config, env={"FAKE_OPENAI_KEY": API_KEY})
        yield running
        running.stop()


def _post(gw: RunningGateway, body: dict[str, Any], tenant: str = TENANT) -> httpx.Response:
    return httpx.post(
        f"{gw.base_url}/admin/v1/tenants/{tenant}/webhook-endpoints",
        json=body,
        headers=Admin(gw).headers,
        timeout=10,
    )


def _path(endpoint: dict[str, Any]) -> str:
    return f"/tenants/{endpoint['tenant_id']}/webhook-endpoints/{endpoint['id']}"


def _wait(predicate: Any, timeout: float = 15) -> None:
    deadline = time.monotonic() + timeout
    while not predicate():
        assert time.monotonic() < deadline, "timed out"
        time.sleep(0.05)


def _unique(url: str) -> str:
    return f"{url}/{uuid.uuid4().hex[:8]}"


@pytest.mark.parametrize(("url", "named", "reason"), REFUSED)
def test_every_spelling_of_a_refused_address_is_refused_at_registration(
    gw: RunningGateway, url: str, named: str, reason: str
) -> None:
    response = _post(gw, {"url": url})
    assert response.status_code == 400, response.text
    error = response.json()["error"]
    assert error["code"] == "unsafe_destination" and error["param"] == "url"
    assert error["message"].startswith("unsafe destination: ")
    assert named in error["message"] and reason in error["message"]
    listed = Admin(gw).call("GET", f"/tenants/{TENANT}/webhook-endpoints")["data"]
    assert all(row["url"] != url for row in listed)


def test_a_private_receiver_needs_allow_private_and_a_name_is_checked_at_delivery(
    gw: RunningGateway, receiver: tuple[Receiver, str]
) -> None:
    url = _unique(receiver[1])
    refused = _post(gw, {"url": url})
    assert refused.status_code == 400
    assert "127.0.0.1: loopback address" in refused.json()["error"]["message"]
    assert "allow_private" in refused.json()["error"]["message"]
    opened = _post(gw, {"url": url, "allow_private": LOOPBACK})
    assert opened.status_code == 201, opened.text
    assert opened.json()["destination_check"] is None  # a literal: decided now
    public = _post(gw, {"url": "https://8.8.8.8/" + uuid.uuid4().hex})
    assert public.status_code == 201 and public.json()["destination_check"] is None
    name = _post(gw, {"url": f"https://hooks-{uuid.uuid4().hex[:6]}.example.invalid/hook"})
    assert name.status_code == 201, name.text
    assert "checked at every delivery" in name.json()["destination_check"]


def test_a_second_endpoint_for_the_same_url_is_a_conflict(
    gw: RunningGateway, receiver: tuple[Receiver, str]
) -> None:
    url = _unique(receiver[1])
    first = _post(gw, {"url": url, "allow_private": LOOPBACK}).json()
    again = _post(gw, {"url": url, "allow_private": LOOPBACK})
    assert again.status_code == 409, again.text
    assert first["id"] in again.json()["error"]["message"]
    other_tenant = Admin(gw).tenant()
    assert _post(gw, {"url": url, "allow_private": LOOPBACK}, other_tenant).status_code == 201
    # A URL change onto another endpoint's URL is the same conflict.
    second = _post(gw, {"url": url + "-2", "allow_private": LOOPBACK}).json()
    moved = httpx.patch(
        Admin(gw).base + _path(second), json={"url": url}, headers=Admin(gw).headers
    )
    assert moved.status_code == 409 and first["id"] in moved.json()["error"]["message"]


def test_an_endpoint_can_be_changed_with_the_same_checks(
    gw: RunningGateway, receiver: tuple[Receiver, str]
) -> None:
    hooks, base = receiver
    admin = Admin(gw)
    endpoint = _post(gw, {"url": _unique(base), "allow_private": LOOPBACK}).json()

    def patch(body: dict[str, Any]) -> httpx.Response:
        return httpx.patch(admin.base + _path(endpoint), json=body, headers=admin.headers)

    # Closing the private network under a loopback URL, or moving to a refused URL: refused.
    closed = patch({"allow_private": None})
    assert closed.status_code == 400 and closed.json()["error"]["code"] == "unsafe_destination"
    moved = patch({"url": "http://10.1/x"})  # 127.0.0.1/32 is open, 10.0.0.1 is not
    assert moved.status_code == 400 and "10.0.0.1" in moved.json()["error"]["message"]
    assert patch({"url": None}).status_code == 400
    assert admin.call("GET", _path(endpoint))["url"] == endpoint["url"]  # unchanged
    # A valid change takes effect: the next job's result goes to the new URL.
    new_url = _unique(base + "/ok")
    changed = patch({"url": new_url, "description": "moved", "events": ["job.succeeded"]})
    assert changed.status_code == 200, changed.text
    assert changed.json()["url"] == new_url and changed.json()["events"] == ["job.succeeded"]
    refused = create(gw, chat_job(callback_url=endpoint["url"]))
    assert refused.status_code == 400 and refused.json()["error"]["param"] == "callback_url"
    path = new_url.removeprefix(base)
    created = create(gw, chat_job(callback_url=new_url))
    assert created.status_code == 202, created.text
    _wait(lambda: hooks.to(path))
    # Disabled: no new job may call it; enabled again: it may.
    assert patch({"enabled": False}).json()["enabled"] is False
    assert create(gw, chat_job(callback_url=new_url)).status_code == 400
    assert patch({"enabled": True}).json()["enabled"] is True
    assert create(gw, chat_job(callback_url=new_url)).status_code == 202


def test_events_filter_what_an_endpoint_receives(
    gw: RunningGateway, receiver: tuple[Receiver, str]
) -> None:
    hooks, base = receiver
    url = _unique(base + "/ok")
    endpoint = _post(gw, {"url": url, "allow_private": LOOPBACK, "events": ["job.failed"]})
    assert endpoint.status_code == 201, endpoint.text
    succeeded = create(gw, chat_job(callback_url=url + "/a")).json()
    failed = create(gw, chat_job(model="gpt-400", callback_url=url + "/b")).json()
    assert wait_finished(gw, succeeded["id"])["status"] == "succeeded"
    assert wait_finished(gw, failed["id"])["status"] == "failed"
    path = url.removeprefix(base)
    _wait(lambda: hooks.to(path + "/b"))
    time.sleep(0.5)  # the outbox polls every 0.1 s: a message for /a would have gone by now
    assert hooks.to(path + "/a") == []
    bad = _post(gw, {"url": _unique(base), "allow_private": LOOPBACK, "events": ["job.nope"]})
    assert bad.status_code == 400 and bad.json()["error"]["param"].startswith("events")


def test_a_deleted_endpoint_is_gone_and_its_jobs_still_finish(
    gw: RunningGateway, receiver: tuple[Receiver, str]
) -> None:
    hooks, base = receiver
    admin = Admin(gw)
    url = _unique(base + "/ok")
    endpoint = _post(gw, {"url": url, "allow_private": LOOPBACK}).json()
    job = chat_job(model="gpt-slow", callback_url=url)
    job["body"]["metadata"] = {"delay": "1"}
    slow = create(gw, job)
    assert slow.status_code == 202, slow.text
    deleted = httpx.delete(admin.base + _path(endpoint), headers=admin.headers)
    assert deleted.status_code == 204, deleted.text
    assert httpx.get(admin.base + _path(endpoint), headers=admin.headers).status_code == 404
    assert create(gw, chat_job(callback_url=url)).status_code == 400
    # The job that was running when its endpoint went away still finishes; nothing is sent.
    assert wait_finished(gw, slow.json()["id"])["status"] == "failed"  # gpt-slow ends in a 500
    assert hooks.to(url.removeprefix(base)) == []
    # The same URL may be registered again.
    assert _post(gw, {"url": url, "allow_private": LOOPBACK}).status_code == 201


def test_another_tenants_admin_cannot_see_change_or_delete_an_endpoint(
    gw: RunningGateway, receiver: tuple[Receiver, str]
) -> None:
    endpoint = _post(gw, {"url": _unique(receiver[1]), "allow_private": LOOPBACK}).json()
    other = Admin(gw).tenant()
    key = Admin(gw).key(other, kind="admin")["key"]
    headers = {"Authorization": f"Bearer {key}"}
    base = Admin(gw).base
    for method, body in (("GET", None), ("PATCH", {"enabled": False}), ("DELETE", None)):
        response = httpx.request(method, base + _path(endpoint), json=body, headers=headers)
        assert response.status_code == 404, (method, response.text)
    assert Admin(gw).call("GET", _path(endpoint))["enabled"] is True


def test_every_failed_attempt_is_logged_counted_and_shown_on_the_endpoint(
    gw: RunningGateway, receiver: tuple[Receiver, str]
) -> None:
    hooks, base = receiver
    admin = Admin(gw)
    url = base + f"/flaky/2/{uuid.uuid4().hex[:8]}"
    endpoint = _post(gw, {"url": url, "allow_private": LOOPBACK}).json()
    fresh = admin.call("GET", _path(endpoint))
    assert (fresh["delivered_count"], fresh["failed_count"], fresh["last_error"]) == (0, 0, None)
    create(gw, chat_job(callback_url=url))
    # Two 500s, then a delivery: the failures stay counted, the run of failures ends.
    _wait(lambda: admin.call("GET", _path(endpoint))["delivered_count"] == 1)
    healthy = admin.call("GET", _path(endpoint))
    assert healthy["consecutive_failures"] == 0 and healthy["failed_count"] == 2
    assert healthy["refused_count"] == 0 and healthy["failing_since"] is None
    assert healthy["last_error"] == "HTTP 500"  # the last failure stays readable
    assert healthy["last_success_at"] >= healthy["last_failure_at"]
    # A receiver that never accepts: the run of failures shows until the message is dead.
    broken_url = base + f"/redirect/{uuid.uuid4().hex[:8]}"
    broken = _post(gw, {"url": broken_url, "allow_private": LOOPBACK}).json()
    create(gw, chat_job(callback_url=broken_url))
    _wait(lambda: admin.call("GET", _path(broken))["consecutive_failures"] == 4)
    failing = admin.call("GET", _path(broken))
    assert failing["last_error"] == "redirect 302 not followed"
    assert failing["failing_since"] is not None and failing["last_failure_at"] is not None
    assert (failing["delivered_count"], failing["failed_count"]) == (0, 4)
    assert failing["last_success_at"] is None
    listed = admin.call("GET", f"/tenants/{TENANT}/webhook-endpoints")["data"]
    assert [r["failed_count"] for r in listed if r["id"] == endpoint["id"]] == [2]
    warnings = [
        line
        for line in gw.logs().splitlines()
        if '"level":"warning"' in line and endpoint["id"] in line and "HTTP 500" in line
    ]
    assert len(warnings) == 2, gw.logs()[-3000:]
    assert endpoint["secret"] not in gw.logs()
    assert len(hooks.to(url.removeprefix(base))) == 3
