"""The vault through a real gateway process, its admin API and the `relaygate` CLI.

A fake OpenAI-compatible upstream accepts only the credentials the test says are valid and
records which one each request carried, so the test sees exactly which secret a request used.
"""

from __future__ import annotations

import json
import os
import sqlite3
import subprocess
import sys
import threading
import time
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import httpx
import openai
import pytest
from aiohttp import web

from relaygate.auth.hmac_signing import sign_request
from tests.fakes.keyed_upstream import Upstream
from tests.support.gateway import ADMIN_KEY, ADMIN_SIGNING_SECRET, RunningGateway, start_gateway
from tests.support.servers import serve_in_thread

PROD_VALUE = "sk-vault-prod-" + uuid.uuid4().hex
STAGING_VALUE = "sk-vault-staging-" + uuid.uuid4().hex
ROTATED_VALUE = "sk-vault-rotated-" + uuid.uuid4().hex
SHARED_VALUE = "sk-vault-shared-" + uuid.uuid4().hex
ALL_VALUES = (PROD_VALUE, STAGING_VALUE, ROTATED_VALUE, SHARED_VALUE)


@dataclass
class Env:
    gw: RunningGateway
    upstream: Upstream
    cli_env: dict[str, str]
    outputs: list[str]

    def admin(self, method: str, path: str, body: Any = None) -> Any:
        response = httpx.request(
            method,
            self.gw.base_url + "/admin/v1" + path,
            json=body,
            headers={"Authorization": f"Bearer {ADMIN_KEY}"},
        )
        assert response.status_code < 300, response.text
        return response.json() if response.content else None

    def cli(self, *args: str, stdin: str = "", ok: bool = True) -> str:
        result = subprocess.run(
            [sys.executable, "-m", "relaygate", *args],
            input=stdin,
            capture_output=True,
            text=True,
            env=self.cli_env,
            timeout=60,
            check=False,
        )
        self.outputs += [result.stdout, result.stderr]
        assert (result.returncode == 0) is ok, (args, result.stdout, result.stderr)
        return result.stdout + result.stderr

    def tenant(self, *environments: str) -> str:
        tenant = f"t-{uuid.uuid4().hex[:8]}"
        self.admin("POST", "/tenants", {"id": tenant, "name": tenant})
        for name in environments:
            self.admin("POST", f"/tenants/{tenant}/environments", {"name": name})
        return tenant

    def key(self, tenant: str, environment: str = "production") -> str:
        created = self.admin("POST", f"/tenants/{tenant}/keys", {"environment": environment})
        return str(created["key"])

    def client(self, key: str) -> openai.OpenAI:
        return openai.OpenAI(base_url=self.gw.v1, api_key=key, max_retries=0)


def _chat(client: openai.OpenAI, model: str = "vaulted/gpt-v") -> Any:
    return client.chat.completions.with_raw_response.create(
        model=model, messages=[{"role": "user", "content": "hi"}]
    )


def _wait_until(check: Any, timeout: float = 10.0) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if check():
            return
        time.sleep(0.1)
    raise AssertionError("condition not reached in time")


@pytest.fixture(scope="module")
def env(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Env]:
    upstream = Upstream(valid={PROD_VALUE, STAGING_VALUE, SHARED_VALUE})
    app = web.Application()
    app.router.add_post("/v1/chat/completions", upstream.chat)
    tmp = tmp_path_factory.mktemp("vault")
    with serve_in_thread(app) as base:
        config = {
            "server": {"policy_refresh_s": 0.3},
            "vault": {"maintenance_interval_s": 0.3, "grace_s": 3600},
            "audit": {"flush_interval_s": 0.3, "checkpoint_interval_s": 1},
            "providers": [
                {"name": "simulator", "type": "simulator", "models": [{"name": "sim"}]},
                {
                    "name": "vaulted",
                    "type": "openai_compatible",
                    "base_url": base + "/v1",
                    "api_key": "vault:openai",
                    "models": [{"name": "gpt-v"}],
                },
                {
                    "name": "pooled",
                    "type": "openai_compatible",
                    "base_url": base + "/v1",
                    "api_key": "vault:shared-openai",
                    "models": [{"name": "gpt-s"}],
                },
            ],
        }
        gw = start_gateway(tmp, config)
        cli_env = {k: v for k, v in os.environ.items() if not k.startswith("RELAYGATE_")}
        cli_env.update(
            RELAYGATE_URL=gw.base_url,
            RELAYGATE_ADMIN_KEY=ADMIN_KEY,
            RELAYGATE_ADMIN_SIGNING_SECRET=ADMIN_SIGNING_SECRET,
            RELAYGATE_CONFIG=str(tmp / "relaygate.yaml"),
            RELAYGATE_DATA_DIR=str(gw.data_dir),
        )
        # The operator signs with the root set on the gateway, and switches to a secret of
        # its own key (issued by a request signed with the root).
        env = Env(gw, upstream, cli_env, [])
        issued = json.loads(env.cli("vault", "signing-secret", "--json"))
        env.cli_env["RELAYGATE_ADMIN_SIGNING_SECRET"] = issued["signing_secret"]
        env.outputs.clear()
        yield env
        gw.stop()


def _put(env: Env, name: str, value: str, *args: str) -> dict[str, Any]:
    out = env.cli("vault", "put", name, "--json", *args, stdin=value + "\n")
    secret: dict[str, Any] = json.loads(out)
    assert value not in out
    return secret


def test_each_environment_uses_only_its_own_credential(env: Env) -> None:
    tenant = env.tenant("staging")
    _put(env, "openai", PROD_VALUE, "--tenant", tenant, "--environment", "production")
    prod, staging = env.key(tenant), env.key(tenant, "staging")
    _wait_until(lambda: _chat_status(env, prod) == 200)
    assert env.upstream.seen[-1] == PROD_VALUE
    # The staging key has no credential of its own and cannot reach production's.
    with pytest.raises(openai.PermissionDeniedError) as info:
        _chat(env.client(staging))
    assert info.value.body["code"] == "credential_not_granted"  # type: ignore[index]
    assert "staging" in str(info.value) and PROD_VALUE not in str(info.value)
    assert env.upstream.seen[-1] == PROD_VALUE  # the staging request never went upstream
    _put(env, "openai", STAGING_VALUE, "--tenant", tenant, "--environment", "staging")
    _wait_until(lambda: _chat_status(env, staging) == 200)
    assert env.upstream.seen[-1] == STAGING_VALUE
    # Another tenant's production key sees neither.
    other = env.key(env.tenant())
    assert _chat_status(env, other) == 403


def _chat_status(env: Env, key: str, model: str = "vaulted/gpt-v") -> int:
    try:
        return int(_chat(env.client(key), model).http_response.status_code)
    except openai.APIStatusError as exc:
        return exc.status_code


def test_operator_secrets_need_a_grant_and_revocation_takes_effect(env: Env) -> None:
    shared = _put(env, "shared-openai", SHARED_VALUE, "--description", "pooled account")
    assert shared["tenant_id"] is None and shared["grants"] == []
    tenant = env.tenant("staging")
    prod, staging = env.key(tenant), env.key(tenant, "staging")
    assert _chat_status(env, prod, "pooled/gpt-s") == 403
    out = env.cli("vault", "grant", shared["id"], "--tenant", tenant, "--environment", "production")
    assert f"{tenant}/production" in out
    _wait_until(lambda: _chat_status(env, prod, "pooled/gpt-s") == 200)
    assert env.upstream.seen[-1] == SHARED_VALUE
    assert _chat_status(env, staging, "pooled/gpt-s") == 403  # granted to production only
    env.cli("vault", "revoke", shared["id"], "--tenant", tenant, "--environment", "production")
    _wait_until(lambda: _chat_status(env, prod, "pooled/gpt-s") == 403)


class Traffic:
    """Threads sending chat requests with one key until stopped; every status is kept."""

    def __init__(self, env: Env, key: str, threads: int = 3) -> None:
        self.statuses: list[int] = []
        self._stop = threading.Event()
        self._threads = [
            threading.Thread(target=self._run, args=(env, key)) for _ in range(threads)
        ]

    def _run(self, env: Env, key: str) -> None:
        client = env.client(key)
        while not self._stop.is_set():
            try:
                self.statuses.append(_chat(client).http_response.status_code)
            except openai.APIStatusError as exc:
                self.statuses.append(exc.status_code)

    def __enter__(self) -> Traffic:
        for thread in self._threads:
            thread.start()
        time.sleep(0.5)
        return self

    def __exit__(self, *_exc: object) -> None:
        time.sleep(0.5)
        self._stop.set()
        for thread in self._threads:
            thread.join()


def test_rotation_under_live_traffic_fails_no_request(env: Env) -> None:
    tenant = env.tenant()
    secret = _put(env, "openai", PROD_VALUE, "--tenant", tenant, "--grace-s", "2")
    key = env.key(tenant)
    _wait_until(lambda: _chat_status(env, key) == 200)
    env.upstream.valid.add(ROTATED_VALUE)  # the provider issued the new key: both work now
    with Traffic(env, key) as traffic:
        env.cli("vault", "rotate", secret["id"], stdin=ROTATED_VALUE)
        _wait_until(lambda: env.upstream.seen[-1] == ROTATED_VALUE)
    assert len(traffic.statuses) > 20 and set(traffic.statuses) == {200}, traffic.statuses

    # After the grace period the old version is retired: its ciphertext is gone.
    def retired() -> bool:
        meta = json.loads(env.cli("vault", "show-metadata", secret["id"], "--json"))
        return [v["state"] for v in meta["versions"]] == ["retired", "active"]

    _wait_until(retired)
    listed = env.cli("vault", "list", "--tenant", tenant)
    assert secret["id"] in listed and "v2" in listed


def test_kek_rotation_rewraps_every_data_key_while_serving(env: Env) -> None:
    tenant = env.tenant()
    _put(env, "openai", PROD_VALUE, "--tenant", tenant)
    key = env.key(tenant)
    _wait_until(lambda: _chat_status(env, key) == 200)
    with Traffic(env, key) as traffic:
        out = env.cli("kek", "rotate")
    assert "data keys rewrapped" in out
    assert len(traffic.statuses) > 20 and set(traffic.statuses) == {200}, traffic.statuses
    keyring = json.loads((env.gw.data_dir / "kek.json").read_text())
    assert len(keyring["versions"]) == 1 and keyring["min_version"] >= 2
    assert _chat_status(env, key) == 200
    assert env.upstream.seen[-1] == PROD_VALUE


def test_the_vault_api_takes_only_signed_requests(env: Env) -> None:
    url = env.gw.base_url + "/admin/v1/vault/secrets"
    bearer = {"Authorization": f"Bearer {ADMIN_KEY}"}
    assert httpx.get(url, headers=bearer).status_code == 401
    signed = sign_request("not-the-secret", "GET", "/admin/v1/vault/secrets", b"", key_id="x")
    assert httpx.get(url, headers={**bearer, **signed}).status_code == 401
    secret = env.cli_env["RELAYGATE_ADMIN_SIGNING_SECRET"]
    who = httpx.get(env.gw.base_url + "/admin/v1/vault/whoami", headers=bearer).json()
    good = sign_request(secret, "GET", "/admin/v1/vault/secrets", b"", key_id=who["key_id"])
    assert httpx.get(url, headers={**bearer, **good}).status_code == 200
    # The same signed request again is a replay.
    assert httpx.get(url, headers={**bearer, **good}).status_code == 401
    # A tenant admin key may not sign as the operator, nor see operator secrets.
    tenant = env.tenant()
    tenant_admin = env.admin("POST", f"/tenants/{tenant}/keys", {"kind": "admin"})["key"]
    fresh = sign_request(secret, "GET", "/admin/v1/vault/secrets", b"", key_id=who["key_id"])
    other = {"Authorization": f"Bearer {tenant_admin}", **fresh}
    assert httpx.get(url, headers=other).status_code == 401


def test_audit_log_attributes_every_use_and_verifies(env: Env) -> None:
    tenant = env.tenant()
    _put(env, "openai", PROD_VALUE, "--tenant", tenant)
    key = env.key(tenant)
    _wait_until(lambda: _chat_status(env, key) == 200)
    request_id = _chat(env.client(key)).http_response.headers["x-request-id"]

    def uses() -> list[dict[str, Any]]:
        with sqlite3.connect(env.gw.data_dir / "relaygate.db") as db:
            rows = db.execute(
                "SELECT actor, tenant_id, detail FROM audit_log WHERE action = 'vault.use'"
            ).fetchall()
        return [json.loads(d) | {"actor": a, "tenant": t} for a, t, d in rows]

    _wait_until(lambda: any(request_id in u["request_ids"] for u in uses()))
    use = next(u for u in uses() if request_id in u["request_ids"])
    assert use["tenant"] == tenant and use["actor"].startswith("key:")
    assert use["subject"] == "production/vaulted"
    with sqlite3.connect(env.gw.data_dir / "relaygate.db") as db:
        actions = {a for (a,) in db.execute("SELECT DISTINCT action FROM audit_log")}
    assert {
        "vault.create",
        "vault.grant",
        "vault.revoke",
        "vault.rotate",
        "vault.retire",
        "vault.kek_rotate",
        "vault.use",
        "admin.post",
        "admin.login",
        "admin.signing_secret",
    } <= actions, actions
    _wait_until(lambda: (env.gw.data_dir / "audit-checkpoints.jsonl").exists())
    out = env.cli("audit", "verify")
    assert out.startswith("audit log OK"), out


def test_no_secret_value_is_stored_logged_or_printed_in_clear(env: Env) -> None:
    # Runs last in this module: every value above has been stored, used, rotated.
    places = {
        "database": (env.gw.data_dir / "relaygate.db").read_bytes(),
        "gateway log": env.gw.logs().encode(),
        "cli output": "\n".join(env.outputs).encode(),
        "checkpoints": (env.gw.data_dir / "audit-checkpoints.jsonl").read_bytes(),
    }
    for wal in env.gw.data_dir.glob("relaygate.db-*"):
        places[wal.name] = wal.read_bytes()
    for where, content in places.items():
        for value in ALL_VALUES:
            assert value.encode() not in content, f"{value[:14]}... in the {where}"
