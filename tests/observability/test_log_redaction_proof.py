"""The redaction proof (issue 24.5): a real gateway, every path that logs taken with requests
carrying each kind of secret and personal data, then every line it wrote is read.

Paths: a successful chat (plain and streamed), an upstream failure whose error body echoes
the secrets and personal data back (logged by the gateway, so the filter has work to do), an
upstream 400 whose message is passed on, an invalid body, authentication failures (a wrong key
that looks real, a JWT, a signed request with a bad signature), and a background job whose
result webhook keeps failing. Every stderr line must be a JSON object, none may hold a secret
or a piece of personal data, and each request's access-log line must be there with the right
status, tenant and tokens."""

from __future__ import annotations

import sqlite3
import time
import uuid
from collections.abc import Iterator
from typing import Any

import httpx
import orjson
import pytest

from relaygate.auth.keys import generate_key
from relaygate.privacy.pseudonym import Pseudonymizer
from relaygate.webhooks.signing import new_secret
from tests.fakes.openai import API_KEY, FakeOpenAI
from tests.jobs.helpers import chat_job, jobs_config
from tests.support.admin import Admin
from tests.support.gateway import RunningGateway, start_gateway
from tests.support.servers import serve_in_thread
from tests.webhooks.receiver import Receiver

WRONG_KEY = generate_key()[0]  # well-formed, checksum and all, but unknown
SECRETS = {
    "openai": "sk-proj-" + "Q7" * 20,
    "anthropic": "sk-ant-api03-" + "Zx9" * 12,
    "google": "AIzaSyFAKE-notarealkey-0123456789abcdef",
    "aws": "AKIA" + "FAKE0EXAMPLE0KEY",
    "relaygate": WRONG_KEY,
    "jwt": "eyJhbGciOiJIUzI1NiJ9.eyJzdWIiOiJ3cC1zaXRlLTQyIiwiZXhwIjo5OTk5OTk5OTk5fQ."
    "c2lnbmF0dXJlLXRoYXQtbG9va3MtcmVhbA",
    "webhook": new_secret(),
    "signature": "5d" * 32,
}
PERSONAL = {
    "email": "alice.liddell@example.org",
    "phone": "+44 20 7946 0958",
    "card": "4111 1111 1111 1111",
}
# What a request quotes: each secret and piece of personal data in a sentence.
QUOTED = (
    f"my key is {SECRETS['openai']}, the other {SECRETS['anthropic']}, google"
    f" {SECRETS['google']}, aws {SECRETS['aws']}, relaygate {SECRETS['relaygate']}, token"
    f" {SECRETS['jwt']}, webhook {SECRETS['webhook']}, sig v1={SECRETS['signature']}; write to"
    f" {PERSONAL['email']} or call {PERSONAL['phone']}, card {PERSONAL['card']}"
)
ACCESS_FIELDS = {
    "request_id",
    "trace_id",
    "method",
    "path",
    "status",
    "outcome",
    "latency_ms",
    "tenant",
    "environment",
    "key_id",
    "endpoint",
    "route",
    "provider",
    "model",
    "stream",
    "input_tokens",
    "output_tokens",
    "cached_tokens",
    "cost_usd",
    "error_type",
    "error_code",
}
LOOPBACK = ["127.0.0.1/32"]


@pytest.fixture(scope="module")
def receiver() -> Iterator[str]:
    with serve_in_thread(Receiver().app()) as url:
        yield url


@pytest.fixture(scope="module")
def gw(
    tmp_path_factory: pytest.TempPathFactory, fake_openai: tuple[FakeOpenAI, str]
) -> Iterator[RunningGateway]:
    config = jobs_config(fake_openai[1])
    fakeoai = next(p for p in config["providers"] if p["name"] == "fakeoai")
    fakeoai["models"].append({"name": "gpt-echo-error", "capabilities": ["chat", "streaming"]})
    config["webhooks"] = {"attempt_timeout_s": 1, "poll_interval_s": 0.1, "schedule_s": [0.2] * 3}
    running = start_gateway(
        tmp_path_factory.mktemp("log-proof"),
        config,
        env={"FAKE_OPENAI_KEY": API_KEY},
        split_stderr=True,
    )
    yield running
    running.stop()


def _chat(
    gw: RunningGateway,
    request_id: str,
    body: dict[str, Any] | bytes,
    headers: dict[str, str] | None = None,
) -> httpx.Response:
    sent = {"Authorization": f"Bearer {gw.key}", "X-Request-ID": request_id, **(headers or {})}
    content = body if isinstance(body, bytes) else orjson.dumps(body)
    sent["Content-Type"] = "application/json"
    return httpx.post(gw.v1 + "/chat/completions", content=content, headers=sent, timeout=30)


def _messages() -> list[dict[str, str]]:
    return [{"role": "user", "content": QUOTED}]


def _wait(predicate: Any, timeout: float = 20) -> None:
    deadline = time.monotonic() + timeout
    while not predicate():
        assert time.monotonic() < deadline, "timed out"
        time.sleep(0.1)


def test_no_secret_or_personal_data_in_any_log_line_and_every_request_has_its_line(
    gw: RunningGateway, receiver: str
) -> None:
    run = uuid.uuid4().hex[:8]
    ids = {name: f"proof-{name}-{run}" for name in ("ok", "stream", "e500", "e400", "invalid")}
    ids |= {name: f"proof-{name}-{run}" for name in ("wrong-key", "jwt", "signed")}

    ok = _chat(
        gw,
        ids["ok"],
        {"model": "fakeoai/gpt-echo", "messages": _messages(), "user": PERSONAL["email"]},
    )
    assert ok.status_code == 200, ok.text
    stream = _chat(
        gw,
        ids["stream"],
        {
            "model": "fakeoai/gpt-echo",
            "messages": _messages(),
            "stream": True,
            "stream_options": {"include_usage": True},
        },
    )
    assert stream.status_code == 200 and "[DONE]" in stream.text
    failed = _chat(
        gw,
        ids["e500"],
        {"model": "fakeoai/gpt-echo-error", "messages": _messages(), "metadata": {"status": "500"}},
    )
    assert failed.status_code == 502, failed.text
    refused = _chat(
        gw,
        ids["e400"],
        {"model": "fakeoai/gpt-echo-error", "messages": _messages(), "metadata": {"status": "400"}},
    )
    assert refused.status_code == 400, refused.text
    invalid = _chat(gw, ids["invalid"], b'{"model": "fast", "messages": [' + QUOTED.encode())
    assert invalid.status_code == 400, invalid.text
    for name, authorization in (("wrong-key", WRONG_KEY), ("jwt", SECRETS["jwt"])):
        answer = _chat(
            gw,
            ids[name],
            {"model": "fast", "messages": _messages()},
            {"Authorization": f"Bearer {authorization}"},
        )
        assert answer.status_code == 401, answer.text
    signed = _chat(
        gw,
        ids["signed"],
        {"model": "fast", "messages": _messages()},
        {
            "Authorization": "",
            "x-relaygate-key-id": "0xX6QmtbK",
            "x-relaygate-timestamp": str(int(time.time())),
            "x-relaygate-signature": f"v1={SECRETS['signature']}",
        },
    )
    assert signed.status_code == 401, signed.text

    # A job whose result webhook keeps failing (the receiver answers 500 on /flaky/99/...).
    admin = Admin(gw)
    hook = f"{receiver}/flaky/99/{run}"
    endpoint = httpx.post(
        f"{gw.base_url}/admin/v1/tenants/default/webhook-endpoints",
        json={"url": hook, "allow_private": LOOPBACK},
        headers=admin.headers,
        timeout=10,
    ).json()
    callback = f"{hook}/{PERSONAL['email']}"
    job = httpx.post(
        gw.v1 + "/jobs",
        json=chat_job(model="fakeoai/gpt-echo", text=QUOTED, callback_url=callback),
        headers={"Authorization": f"Bearer {gw.key}", "X-Request-ID": f"proof-job-{run}"},
        timeout=10,
    )
    assert job.status_code in (200, 201, 202), job.text
    path = f"/tenants/default/webhook-endpoints/{endpoint['id']}"
    _wait(lambda: admin.call("GET", path)["failed_count"] >= 2)

    gw.stop()  # the shutdown's lines too
    assert gw.stderr_path is not None
    stderr = gw.stderr_path.read_text()
    everything = stderr + gw.logs()
    forbidden = [
        *SECRETS.values(),
        *PERSONAL.values(),
        PERSONAL["card"].replace(" ", ""),
        API_KEY,
        gw.key,
        gw.admin_key,
        endpoint["secret"],
    ]
    for value in forbidden:
        assert value not in everything, value
    assert "Traceback" not in everything

    lines = [orjson.loads(line) for line in stderr.splitlines() if line.strip()]
    assert lines and all({"time", "level", "logger", "message"} <= set(e) for e in lines)
    assert all(e["time"].endswith("Z") for e in lines)
    # The provider's error body reached the log, with its echo redacted (the filter worked).
    echoed = [e for e in lines if e["logger"] == "relaygate.providers"]
    assert echoed, "the upstream failure was not logged"
    assert all("[redacted:email]" in e["message"] for e in echoed)
    assert any("[redacted:openai_key]" in e["message"] for e in echoed)
    assert any("answered HTTP 500" in e["message"] for e in echoed)
    # The webhook failures were logged.
    assert any(endpoint["id"] in e["message"] and e["level"] == "warning" for e in lines)

    access = {e["request_id"]: e for e in lines if e["logger"] == "relaygate.access"}
    for entry in access.values():
        assert set(entry) >= ACCESS_FIELDS
        assert entry["trace_id"] is None  # until tracing exists
    expected = {
        "ok": (200, "ok", None),
        "stream": (200, "ok", None),
        "e500": (502, "upstream_error", "upstream_error"),
        "e400": (400, "upstream_error", "echo_error"),
        "invalid": (400, "error", None),
        "wrong-key": (401, "error", "invalid_api_key"),
        "jwt": (401, "error", "invalid_api_key"),
        "signed": (401, "error", None),
    }
    for name, (status, outcome, code) in expected.items():
        entry = access.get(ids[name])
        assert entry is not None, f"no access line for {name}"
        assert (entry["status"], entry["outcome"]) == (status, outcome), (name, entry)
        assert entry["method"] == "POST" and entry["path"] == "/v1/chat/completions"
        if code is not None:
            assert entry["error_code"] == code, (name, entry)
        assert entry["latency_ms"] > 0
    for name in ("invalid", "wrong-key", "jwt", "signed"):
        assert access[ids[name]]["error_type"] in (
            "invalid_request_error",
            "authentication_error",
        )
        assert access[ids[name]]["tenant"] is None  # refused before anyone was known

    done = access[ids["ok"]]
    assert done["tenant"] == "default" and done["environment"] == "production"
    assert (done["provider"], done["model"], done["route"]) == (
        "fakeoai",
        "gpt-echo",
        "fakeoai/gpt-echo",
    )
    assert (done["input_tokens"], done["output_tokens"], done["cached_tokens"]) == (11, 5, 2)
    assert done["stream"] is False and done["error_type"] is None
    with sqlite3.connect(gw.data_dir / "relaygate.db") as db:
        row = db.execute(
            "SELECT cost_usd, prompt_tokens, completion_tokens, key_id FROM usage_records"
            " WHERE request_id = ?",
            (ids["ok"],),
        ).fetchone()
    assert row is not None
    assert done["cost_usd"] == pytest.approx(row[0]) and done["cost_usd"] > 0
    assert (done["input_tokens"], done["output_tokens"], done["key_id"]) == tuple(row[1:])
    streamed = access[ids["stream"]]
    assert streamed["stream"] is True and streamed["output_tokens"] > 0
    assert streamed["tenant"] == "default"
    # The job: its creation is a request; its run, in the gateway, a line of its own.
    assert access[f"proof-job-{run}"]["path"] == "/v1/jobs"
    runs = [e for e in access.values() if e["method"] == "JOB"]
    assert runs and runs[0]["status"] == 200 and runs[0]["tenant"] == "default"
    assert runs[0]["model"] == "gpt-echo" and runs[0]["output_tokens"] > 0


def test_text_format_pseudonyms_and_no_access_log(
    tmp_path_factory: pytest.TempPathFactory, fake_openai: tuple[FakeOpenAI, str]
) -> None:
    """`RELAYGATE_LOG_FORMAT=text`, `logging.access_log: false`, `privacy.hash_pii: true`: text
    lines, no access lines, and an e-mail address in a logged text becomes the same keyed
    pseudonym the usage records use."""
    config = jobs_config(fake_openai[1])
    fakeoai = next(p for p in config["providers"] if p["name"] == "fakeoai")
    fakeoai["models"].append({"name": "gpt-echo-error", "capabilities": ["chat"]})
    config["logging"] = {"access_log": False}
    config["privacy"] = {"hash_pii": True}
    salt = "a-salt-for-the-log-proof-0123456789"
    gw = start_gateway(
        tmp_path_factory.mktemp("log-text"),
        config,
        env={
            "FAKE_OPENAI_KEY": API_KEY,
            "RELAYGATE_LOG_FORMAT": "text",
            "RELAYGATE_PII_SALT": salt,
        },
        split_stderr=True,
    )
    try:
        failed = _chat(
            gw,
            "proof-text",
            {
                "model": "fakeoai/gpt-echo-error",
                "messages": [{"role": "user", "content": f"mail {PERSONAL['email']} now"}],
                "metadata": {"status": "400"},
            },
        )
        assert failed.status_code == 400, failed.text
        ok = _chat(gw, "proof-text-ok", {"model": "fakeoai/gpt-echo", "messages": _messages()})
        assert ok.status_code == 200
    finally:
        gw.stop()
    assert gw.stderr_path is not None
    stderr = gw.stderr_path.read_text()
    pseudonym = Pseudonymizer(salt.encode())(PERSONAL["email"])
    provider_lines = [line for line in stderr.splitlines() if " relaygate.providers: " in line]
    assert provider_lines and all(" WARNING " in line for line in provider_lines)
    assert f"mail [email:{pseudonym}] now" in provider_lines[0]
    assert PERSONAL["email"] not in stderr + gw.logs()
    assert "relaygate.access" not in stderr
    assert not stderr.lstrip().startswith("{")
