"""Tenancy policy as a client of a real gateway process sees it.

Allowlists, per-request caps, rate limits, budgets (hard, soft with downgrade, stream cut-off),
revocation, HMAC-signed requests and site-minted JWTs, all set up through the admin API.
"""

from __future__ import annotations

import asyncio
import base64
import json
import secrets
import sqlite3
import time
import uuid
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import httpx
import jwt
import openai
import pytest

from relaygate.auth.hmac_signing import sign_request
from tests.support.admin import Admin
from tests.support.gateway import RunningGateway, start_gateway

REPLY_TOKENS = 24


def _config() -> dict[str, Any]:
    return {
        "server": {"policy_refresh_s": 0.5, "heartbeat_interval_s": 5},
        "budgets": {"reserve_output_tokens": 4, "stream_overrun": "finish"},
        "providers": [
            {
                "name": "simulator",
                "type": "simulator",
                "simulator": {"ttft_ms": 0, "tokens_per_s": 2000, "max_reply_tokens": REPLY_TOKENS},
                "models": [
                    {"name": "sim-small", "input_price": 0.0, "output_price": 1000.0},
                    {"name": "sim-big", "input_price": 0.0, "output_price": 10000.0},
                ],
            }
        ],
        "routes": [
            {"name": "fast", "targets": ["simulator/sim-small"]},
            {"name": "smart", "targets": ["simulator/sim-big"]},
        ],
    }


@pytest.fixture(scope="module")
def gw(tmp_path_factory: pytest.TempPathFactory) -> Iterator[RunningGateway]:
    running = start_gateway(tmp_path_factory.mktemp("policy"), _config())
    yield running
    running.stop()


@pytest.fixture(scope="module")
def admin(gw: RunningGateway) -> Admin:
    return Admin(gw)


def _client(gw: RunningGateway, key: str) -> openai.OpenAI:
    return openai.OpenAI(base_url=gw.v1, api_key=key, max_retries=0)


def _chat(client: openai.OpenAI, model: str = "fast", **extra: Any) -> Any:
    return client.chat.completions.create(
        model=model, messages=[{"role": "user", "content": "hello"}], **extra
    )


def _records(gw: RunningGateway, key_id: str) -> list[sqlite3.Row]:
    deadline = time.monotonic() + 5
    rows: list[sqlite3.Row] = []
    while time.monotonic() < deadline:
        with sqlite3.connect(gw.data_dir / "relaygate.db") as db:
            db.row_factory = sqlite3.Row
            rows = db.execute(
                "SELECT * FROM usage_records WHERE key_id = ? ORDER BY id", (key_id,)
            ).fetchall()
        if rows:
            return rows
        time.sleep(0.2)
    return rows


# --- allowlists and per-request caps ---------------------------------------------------------


def test_allowlist_hides_and_refuses_other_models(gw: RunningGateway, admin: Admin) -> None:
    tenant = admin.tenant(allowed_models=["fast", "smart"])
    key = admin.key(tenant, allowed_models=["fast"])
    client = _client(gw, key["key"])
    assert _chat(client).choices[0].message.content
    with pytest.raises(openai.NotFoundError):
        _chat(client, "smart")
    with pytest.raises(openai.NotFoundError):
        _chat(client, "simulator/sim-big")
    assert [m.id for m in client.models.list().data] == ["fast"]


def test_key_caps_max_tokens_and_body_size(gw: RunningGateway, admin: Admin) -> None:
    tenant = admin.tenant()
    key = admin.key(tenant, max_tokens=5, max_body_bytes=400)
    client = _client(gw, key["key"])
    with pytest.raises(openai.BadRequestError) as excinfo:
        _chat(client, max_tokens=6)
    assert excinfo.value.body["param"] == "max_tokens"  # type: ignore[index]
    reply = _chat(client)  # no max_tokens: the key's cap applies
    assert reply.usage is not None and reply.usage.completion_tokens <= 5
    with pytest.raises(openai.APIStatusError) as too_big:
        client.chat.completions.create(
            model="fast", messages=[{"role": "user", "content": "x" * 500}]
        )
    assert too_big.value.status_code == 413


# --- rate limits -------------------------------------------------------------------------------


def test_requests_per_minute_with_openai_headers(gw: RunningGateway, admin: Admin) -> None:
    tenant = admin.tenant()
    key = admin.key(tenant)
    admin.call(
        "POST", f"/tenants/{tenant}/limits", {"scope": "key", "subject": key["id"], "rpm": 3}
    )
    client = _client(gw, key["key"])
    first = client.chat.completions.with_raw_response.create(
        model="fast", messages=[{"role": "user", "content": "hi"}]
    )
    assert first.headers["x-ratelimit-limit-requests"] == "3"
    assert first.headers["x-ratelimit-remaining-requests"] == "2"
    assert first.headers["x-ratelimit-reset-requests"]
    _chat(client)
    _chat(client)
    with pytest.raises(openai.RateLimitError) as excinfo:
        _chat(client)
    headers = excinfo.value.response.headers
    assert int(headers["retry-after"]) >= 1
    assert headers["x-ratelimit-remaining-requests"] == "0"
    assert "requests per minute" in excinfo.value.message


def test_tenant_limit_covers_all_its_keys(gw: RunningGateway, admin: Admin) -> None:
    tenant = admin.tenant()
    one, two = admin.key(tenant), admin.key(tenant)
    admin.call("POST", f"/tenants/{tenant}/limits", {"scope": "tenant", "rpm": 2})
    _chat(_client(gw, one["key"]))
    _chat(_client(gw, two["key"]))
    with pytest.raises(openai.RateLimitError):
        _chat(_client(gw, one["key"]))
    other = admin.tenant()
    _chat(_client(gw, admin.key(other)["key"]))  # another tenant is untouched


def test_tokens_per_minute_counts_the_prompt_before_the_call(
    gw: RunningGateway, admin: Admin
) -> None:
    tenant = admin.tenant()
    key = admin.key(tenant)
    admin.call(
        "POST", f"/tenants/{tenant}/limits", {"scope": "key", "subject": key["id"], "tpm": 200}
    )
    client = _client(gw, key["key"])
    with pytest.raises(openai.RateLimitError):  # a prompt larger than the whole minute's budget
        client.chat.completions.create(
            model="fast", messages=[{"role": "user", "content": "word " * 400}]
        )
    reply = client.chat.completions.with_raw_response.create(
        model="fast", messages=[{"role": "user", "content": "hello"}]
    )
    assert reply.headers["x-ratelimit-limit-tokens"] == "200"
    assert int(reply.headers["x-ratelimit-remaining-tokens"]) < 200


def test_per_user_limit_applies_to_each_end_user(gw: RunningGateway, admin: Admin) -> None:
    tenant = admin.tenant()
    key = admin.key(tenant)
    admin.call("POST", f"/tenants/{tenant}/limits", {"scope": "user", "subject": "*", "rpm": 2})
    client = _client(gw, key["key"])
    _chat(client, user="wp-1")
    _chat(client, user="wp-1")
    with pytest.raises(openai.RateLimitError):
        _chat(client, user="wp-1")
    _chat(client, user="wp-2")
    _chat(client)  # no end user: the per-user limit does not apply


async def test_concurrency_limit(gw: RunningGateway, admin: Admin) -> None:
    tenant = admin.tenant()
    key = admin.key(tenant)
    admin.call(
        "POST",
        f"/tenants/{tenant}/limits",
        {"scope": "key", "subject": key["id"], "concurrency": 1},
    )
    async with openai.AsyncOpenAI(base_url=gw.v1, api_key=key["key"], max_retries=0) as client:
        slow = await client.chat.completions.create(
            model="fast",
            stream=True,
            messages=[{"role": "user", "content": "hi"}],
            metadata={"simulator_tokens_per_s": "20"},
        )
        with pytest.raises(openai.RateLimitError) as excinfo:
            await client.chat.completions.create(
                model="fast", messages=[{"role": "user", "content": "hi"}]
            )
        assert "concurrent" in excinfo.value.message
        async for _ in slow:
            pass
        for _ in range(20):  # the slot comes back once the stream has ended
            try:
                await client.chat.completions.create(
                    model="fast", messages=[{"role": "user", "content": "hi"}]
                )
                break
            except openai.RateLimitError:
                await asyncio.sleep(0.05)
        else:
            pytest.fail("the concurrency slot was never released")


# --- budgets -------------------------------------------------------------------------------------


def test_hard_budget_refuses_with_a_clear_error(gw: RunningGateway, admin: Admin) -> None:
    tenant = admin.tenant()
    key = admin.key(tenant)
    # sim-small: $1,000 per million output tokens; 4 reserved output tokens cost $0.004.
    admin.call(
        "POST",
        f"/tenants/{tenant}/budgets",
        {"scope": "key", "subject": key["id"], "period": "day", "limit_usd": 0.01, "hard": True},
    )
    client = _client(gw, key["key"])
    _chat(client, max_tokens=4)
    _chat(client, max_tokens=4)
    with pytest.raises(openai.RateLimitError) as excinfo:
        _chat(client, max_tokens=4)
    body = excinfo.value.body
    assert isinstance(body, dict)
    assert body["code"] == "budget_exceeded"
    assert body["type"] == "insufficient_quota"
    assert "daily budget" in body["message"]
    events = admin.call("GET", f"/tenants/{tenant}/events")
    assert any(e["kind"] == "hard_cap_reached" for e in _items(events))


def test_a_first_request_too_dear_for_a_hard_budget_is_told_why(
    gw: RunningGateway, admin: Admin
) -> None:
    """Nothing spent, and still refused: the most the request can cost (4 reserved output
    tokens of sim-small, $0.004) does not fit the $0.003 budget. The message says exactly that,
    with the numbers, instead of calling the unspent budget exhausted."""
    tenant = admin.tenant()
    key = admin.key(tenant)
    admin.call(
        "POST",
        f"/tenants/{tenant}/budgets",
        {"scope": "key", "subject": key["id"], "period": "day", "limit_usd": 0.003, "hard": True},
    )
    with pytest.raises(openai.RateLimitError) as excinfo:
        _chat(_client(gw, key["key"]), max_tokens=4)
    body = excinfo.value.body
    assert isinstance(body, dict) and body["code"] == "budget_exceeded"
    message = body["message"]
    assert message.startswith(
        "daily budget of $0.003 for this key cannot cover this request: it may cost up to"
        " $0.004 (its prompt and its maximum output at the route's highest price), more than"
        " the $0.003 left (limit $0.003, spent $0.00, held for requests in flight $0.00);"
    )
    assert "exhausted" not in message


def _items(listing: Any) -> list[dict[str, Any]]:
    return listing["data"] if isinstance(listing, dict) else listing


def test_soft_budget_downgrades_to_a_cheaper_route(gw: RunningGateway, admin: Admin) -> None:
    tenant = admin.tenant()
    key = admin.key(tenant)
    admin.call(
        "POST",
        f"/tenants/{tenant}/budgets",
        {
            "scope": "tenant",
            "period": "month",
            "limit_usd": 0.0001,
            "hard": False,
            "downgrade_to": "fast",
            "alert": True,
        },
    )
    client = _client(gw, key["key"])
    raw = client.chat.completions.with_raw_response.create(
        model="smart", max_tokens=4, messages=[{"role": "user", "content": "hi"}]
    )
    assert raw.headers["x-relaygate-downgraded-from"] == "smart"
    assert raw.headers["x-relaygate-route"] == "fast"
    assert raw.headers["x-relaygate-model"] == "sim-small"
    deadline = time.monotonic() + 5
    while time.monotonic() < deadline:
        events = _items(admin.call("GET", f"/tenants/{tenant}/events"))
        if events:
            break
        time.sleep(0.1)
    assert [e["kind"] for e in events] == ["soft_cap_crossed"]


def test_stream_crossing_a_hard_cap_ends_cleanly(gw: RunningGateway, admin: Admin) -> None:
    tenant = admin.tenant()
    key = admin.key(tenant)
    # 4 output tokens reserved ($0.004); the budget allows about 10 tokens in all.
    admin.call(
        "POST",
        f"/tenants/{tenant}/budgets",
        {"scope": "key", "subject": key["id"], "period": "day", "limit_usd": 0.0101, "hard": True},
    )
    stream = _client(gw, key["key"]).chat.completions.create(
        model="fast",
        stream=True,
        stream_options={"include_usage": True},
        messages=[{"role": "user", "content": "tell me a story"}],
    )
    chunks = list(stream)
    finishes = [c.choices[0].finish_reason for c in chunks if c.choices]
    assert finishes[-1] == "length"
    assert chunks[-1].usage is not None
    assert chunks[-1].usage.completion_tokens < REPLY_TOKENS


# --- keys, signatures and tokens ----------------------------------------------------------------


def test_revoked_key_stops_working(gw: RunningGateway, admin: Admin) -> None:
    tenant = admin.tenant()
    key = admin.key(tenant)
    client = _client(gw, key["key"])
    _chat(client)
    admin.call("POST", f"/tenants/{tenant}/keys/{key['id']}/revoke", {})
    with pytest.raises(openai.AuthenticationError):
        _chat(client)


def test_a_changed_allowlist_applies_to_the_next_request(gw: RunningGateway, admin: Admin) -> None:
    # The route a key resolves to is remembered per policy snapshot: a change must replace it.
    tenant = admin.tenant()
    key = admin.key(tenant, allowed_models=["fast", "smart"])
    client = _client(gw, key["key"])
    assert _chat(client, "smart").choices[0].message.content
    admin.call("PATCH", f"/tenants/{tenant}/keys/{key['id']}", {"allowed_models": ["fast"]})
    with pytest.raises(openai.NotFoundError):
        _chat(client, "smart")
    admin.call("PATCH", f"/tenants/{tenant}/keys/{key['id']}", {"allowed_models": None})
    assert _chat(client, "smart").choices[0].message.content


def test_a_key_stops_working_the_moment_it_expires(gw: RunningGateway, admin: Admin) -> None:
    # No policy change happens at expiry, so the remembered principal must not outlive it.
    tenant = admin.tenant()
    expires = datetime.now(UTC) + timedelta(seconds=2)
    key = admin.key(tenant, expires_at=expires.isoformat())
    client = _client(gw, key["key"])
    assert _chat(client).choices[0].message.content
    assert _chat(client).choices[0].message.content
    time.sleep(max(0.0, (expires - datetime.now(UTC)).total_seconds()) + 0.2)
    with pytest.raises(openai.AuthenticationError):
        _chat(client)


def _signed_post(gw: RunningGateway, key: dict[str, Any], body: bytes) -> httpx.Response:
    headers = sign_request(key["signing_secret"], "POST", "/v1/chat/completions", body)
    headers["x-relaygate-key-id"] = key["id"]
    return httpx.post(
        gw.v1 + "/chat/completions",
        content=body,
        headers={**headers, "content-type": "application/json"},
    )


def test_hmac_signed_requests(gw: RunningGateway, admin: Admin) -> None:
    tenant = admin.tenant()
    key = admin.key(tenant, signing=True, require_signature=True)
    body = json.dumps({"model": "fast", "messages": [{"role": "user", "content": "hi"}]}).encode()
    response = _signed_post(gw, key, body)
    assert response.status_code == 200, response.text
    replayed = httpx.post(
        gw.v1 + "/chat/completions",
        content=body,
        headers={**dict(response.request.headers)},
    )
    assert replayed.status_code == 401
    headers = sign_request(key["signing_secret"], "POST", "/v1/chat/completions", body)
    headers["x-relaygate-key-id"] = key["id"]
    tampered = httpx.post(gw.v1 + "/chat/completions", content=body + b" ", headers=headers)
    assert tampered.status_code == 401
    assert tampered.json()["error"]["message"] == "invalid or missing credentials"
    with pytest.raises(openai.AuthenticationError):  # this key only accepts signed requests
        _chat(_client(gw, key["key"]))
    _assert_never_stored_or_logged(gw, key["signing_secret"], key["key"])


def _assert_never_stored_or_logged(gw: RunningGateway, *secrets_: str) -> None:
    """Secrets are in no log line and, in clear, nowhere in the database file."""
    database = b"".join(
        path.read_bytes()
        for path in gw.data_dir.glob("relaygate.db*")  # with the WAL file
    )
    master_key = (gw.data_dir / "master.key").read_text().strip()
    for secret in (*secrets_, master_key):
        assert secret not in gw.logs()
        assert secret.encode() not in database


def test_site_jwt_identifies_the_end_user(gw: RunningGateway, admin: Admin) -> None:
    tenant = admin.tenant()
    secret = secrets.token_bytes(32)
    issuer = f"https://{tenant}.example"
    admin.call(
        "POST",
        f"/tenants/{tenant}/jwt-issuers",
        {
            "issuer": issuer,
            "audience": "relaygate",
            "algorithm": "HS256",
            "environment": "production",
            "keys": {"k1": base64.urlsafe_b64encode(secret).rstrip(b"=").decode()},
        },
    )
    now = int(time.time())
    claims = {
        "iss": issuer,
        "aud": "relaygate",
        "sub": "wp-user-7",
        "iat": now,
        "exp": now + 120,
        "jti": uuid.uuid4().hex,
    }
    token = jwt.encode(claims, secret, algorithm="HS256", headers={"kid": "k1"})
    client = _client(gw, token)
    reply = _chat(client, user="someone-else")
    assert reply.choices[0].message.content
    with pytest.raises(openai.AuthenticationError):  # the same jti again
        _chat(client)
    rows = _records(gw, f"jwt:{_issuer_id(admin, tenant)}")
    assert rows and rows[0]["end_user"] == "wp-user-7"
    assert rows[0]["tenant_id"] == tenant
    encoded = base64.urlsafe_b64encode(secret).rstrip(b"=").decode()
    _assert_never_stored_or_logged(gw, token, encoded)


def _issuer_id(admin: Admin, tenant: str) -> str:
    issuers = _items(admin.call("GET", f"/tenants/{tenant}/jwt-issuers"))
    return str(issuers[0]["id"])


def test_usage_records_carry_tenant_environment_key_and_user(
    gw: RunningGateway, admin: Admin, tmp_path: Path
) -> None:
    tenant = admin.tenant()
    admin.call("POST", f"/tenants/{tenant}/environments", {"name": "staging"})
    key = admin.key(tenant, environment="staging")
    assert key["key"].startswith("rg_test_")
    _chat(_client(gw, key["key"]), user="wp-9")
    row = _records(gw, key["id"])[0]
    assert (row["tenant_id"], row["environment"], row["end_user"]) == (tenant, "staging", "wp-9")
    assert row["route"] == "fast" and row["status"] == 200 and row["cost_usd"] > 0
