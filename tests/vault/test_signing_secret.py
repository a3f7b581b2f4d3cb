"""The attack docs/vault.md says is impossible, against a real gateway: someone holding only an
admin bearer key (a tenant admin's or the operator's) tries to obtain or replace a vault signing
secret and to use the vault. Also: rotation with an overlap, a clear refusal for a replaced
secret, who may issue a first secret, and the CLI."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
import uuid
from collections.abc import Iterator
from typing import Any

import httpx
import pytest

from relaygate.auth.hmac_signing import sign_request
from tests.support.admin import Admin
from tests.support.gateway import ADMIN_KEY, ADMIN_SIGNING_SECRET, RunningGateway, start_gateway

VAULT = "/admin/v1/vault"


@pytest.fixture(scope="module")
def gw(tmp_path_factory: pytest.TempPathFactory) -> Iterator[RunningGateway]:
    config = {
        "server": {"policy_refresh_s": 0.3},
        "providers": [{"name": "simulator", "type": "simulator", "models": [{"name": "sim"}]}],
    }
    running = start_gateway(tmp_path_factory.mktemp("vault-signing"), config)
    yield running
    running.stop()


def _call(
    gw: RunningGateway,
    key: str,
    method: str,
    path: str,
    body: Any = None,
    *,
    secret: str | None = None,
    key_id: str | None = None,
) -> httpx.Response:
    """A vault request with bearer `key`, signed with `secret` when given."""
    path += f"?nonce={uuid.uuid4().hex}"  # every signed request distinct (no replay refusal)
    data = b"" if body is None else json.dumps(body).encode()
    headers = {"Authorization": f"Bearer {key}"}
    if body is not None:
        headers["Content-Type"] = "application/json"
    if secret is not None:
        assert key_id is not None
        headers.update(sign_request(secret, method, path, data, key_id=key_id))
    return httpx.request(method, gw.base_url + path, content=data, headers=headers, timeout=10)


def _operator_id(gw: RunningGateway) -> str:
    return str(_call(gw, ADMIN_KEY, "GET", VAULT + "/whoami").json()["key_id"])


def _as_operator(gw: RunningGateway, method: str, path: str, body: Any = None) -> httpx.Response:
    return _call(
        gw, ADMIN_KEY, method, path, body, secret=ADMIN_SIGNING_SECRET, key_id=_operator_id(gw)
    )


def _eventually(request: Any, status: int, timeout: float = 10) -> httpx.Response:
    """Repeat `request` until it answers `status` (other processes reload within a refresh)."""
    deadline = time.monotonic() + timeout
    while True:
        response: httpx.Response = request()
        if response.status_code == status or time.monotonic() > deadline:
            return response
        time.sleep(0.1)


def _tenant_admin(gw: RunningGateway, tenant: str | None = None) -> tuple[str, str, str]:
    """A tenant admin key with a vault signing secret issued by the operator: (key, id, secret)."""
    tenant = tenant or Admin(gw).tenant()
    created = Admin(gw).key(tenant, kind="admin")
    issued = _as_operator(gw, "POST", f"{VAULT}/keys/{created['id']}/signing-secret")
    assert issued.status_code == 200, issued.text
    assert issued.json()["key_id"] == created["id"]
    assert issued.json()["previous_valid_until"] is None
    return created["key"], created["id"], issued.json()["signing_secret"]


def _error(response: httpx.Response) -> dict[str, Any]:
    error: dict[str, Any] = response.json()["error"]
    return error


def test_a_leaked_tenant_admin_bearer_key_can_neither_get_a_signing_secret_nor_use_the_vault(
    gw: RunningGateway,
) -> None:
    key, key_id, secret = _tenant_admin(gw)

    def client_works() -> httpx.Response:
        return _call(gw, key, "GET", VAULT + "/secrets", secret=secret, key_id=key_id)

    assert _eventually(client_works, 200).status_code == 200
    # The attacker has the bearer key and nothing else.
    attempts = [
        _call(gw, key, "POST", VAULT + "/signing-secret"),
        _call(gw, key, "POST", VAULT + "/signing-secret", {"overlap_s": 0}),
        _call(gw, key, "POST", f"{VAULT}/keys/{key_id}/signing-secret"),
        _call(gw, key, "GET", VAULT + "/secrets"),
        _call(gw, key, "POST", VAULT + "/secrets", {"name": "x", "value": "y"}),
    ]
    for response in attempts:
        assert response.status_code == 401, response.text
        assert _error(response)["code"] == "signature_required"
        assert "signing_secret" not in response.json()
    message = _error(attempts[0])["message"]
    assert "bearer key alone is not enough" in message and "from the operator" in message
    # A guessed secret is refused as such.
    guessed = _call(gw, key, "POST", VAULT + "/signing-secret", secret="x" * 43, key_id=key_id)
    assert guessed.status_code == 401 and _error(guessed)["code"] == "invalid_signature"
    # A new admin key made with the leaked key has no secret and cannot get one either.
    tenant = Admin(gw).call("GET", f"/tenants/{_tenant_of(gw, key_id)}")["id"]
    made = httpx.post(
        f"{gw.base_url}/admin/v1/tenants/{tenant}/keys",
        json={"kind": "admin"},
        headers={"Authorization": f"Bearer {key}"},
    )
    assert made.status_code == 201, made.text
    fresh, fresh_id = made.json()["key"], made.json()["id"]
    for response in (
        _call(gw, fresh, "POST", VAULT + "/signing-secret"),
        _call(gw, fresh, "POST", VAULT + "/signing-secret", secret="y" * 43, key_id=fresh_id),
        _call(gw, fresh, "GET", VAULT + "/secrets", secret=secret, key_id=fresh_id),
    ):
        assert response.status_code == 401, response.text
        assert _error(response)["code"] in {"signature_required", "no_signing_secret"}
    # ... nor through the leaked key's own secret, issued for another key of the tenant.
    cross = _call(gw, key, "GET", VAULT + "/secrets", secret=secret, key_id=fresh_id)
    assert cross.status_code == 401
    # The client's secret was never replaced: it still works.
    assert client_works().status_code == 200


def _tenant_of(gw: RunningGateway, key_id: str) -> str:
    for tenant in Admin(gw).call("GET", "/tenants")["data"]:
        keys = Admin(gw).call("GET", f"/tenants/{tenant['id']}/keys")["data"]
        if any(k["id"] == key_id for k in keys):
            return str(tenant["id"])
    raise AssertionError(key_id)


def test_a_leaked_operator_bearer_key_cannot_use_the_vault_either(gw: RunningGateway) -> None:
    for response in (
        _call(gw, ADMIN_KEY, "POST", VAULT + "/signing-secret"),
        _call(gw, ADMIN_KEY, "POST", f"{VAULT}/keys/{_operator_id(gw)}/signing-secret"),
        _call(gw, ADMIN_KEY, "GET", VAULT + "/secrets"),
        _call(gw, ADMIN_KEY, "POST", VAULT + "/kek/rotate"),
    ):
        assert response.status_code == 401 and _error(response)["code"] == "signature_required"
    assert _as_operator(gw, "GET", VAULT + "/secrets").status_code == 200


def test_a_rotation_keeps_the_old_secret_for_its_overlap_then_says_why_it_is_refused(
    gw: RunningGateway,
) -> None:
    key, key_id, first = _tenant_admin(gw)

    def works(secret: str) -> int:
        return _call(gw, key, "GET", VAULT + "/secrets", secret=secret, key_id=key_id).status_code

    _eventually(lambda: _call(gw, key, "GET", VAULT + "/secrets", secret=first, key_id=key_id), 200)
    rotated = _call(
        gw, key, "POST", VAULT + "/signing-secret", {"overlap_s": 3600}, secret=first, key_id=key_id
    )
    assert rotated.status_code == 200, rotated.text
    second = rotated.json()["signing_secret"]
    assert second != first and rotated.json()["previous_valid_until"] is not None
    _eventually(
        lambda: _call(gw, key, "GET", VAULT + "/secrets", secret=second, key_id=key_id), 200
    )
    assert works(first) == 200  # inside the overlap, the exported secret keeps working
    # Rotating again without overlap ends both earlier secrets at once.
    again = _call(
        gw, key, "POST", VAULT + "/signing-secret", {"overlap_s": 0}, secret=second, key_id=key_id
    )
    assert again.status_code == 200 and again.json()["previous_valid_until"] is None
    third = again.json()["signing_secret"]
    _eventually(lambda: _call(gw, key, "GET", VAULT + "/secrets", secret=third, key_id=key_id), 200)
    for old in (first, second):
        refused = _call(gw, key, "GET", VAULT + "/secrets", secret=old, key_id=key_id)
        assert refused.status_code == 401
        error = _error(refused)
        assert error["code"] == "signing_secret_expired"
        assert "replaced and stopped working at" in error["message"] and key_id in error["message"]
        assert old not in refused.text and third not in refused.text
    logs = gw.logs()
    for secret in (first, second, third, ADMIN_SIGNING_SECRET):
        assert secret not in logs


def test_who_may_issue_a_first_secret(gw: RunningGateway) -> None:
    tenant = Admin(gw).tenant()
    key, key_id, secret = _tenant_admin(gw, tenant)
    _eventually(
        lambda: _call(gw, key, "GET", VAULT + "/secrets", secret=secret, key_id=key_id), 200
    )

    def issue(target: str) -> httpx.Response:
        return _call(
            gw, key, "POST", f"{VAULT}/keys/{target}/signing-secret", secret=secret, key_id=key_id
        )

    # A tenant admin that signs may give a first secret to another admin key of its tenant ...
    peer = Admin(gw).key(tenant, kind="admin")
    issued = issue(peer["id"])
    assert issued.status_code == 200, issued.text
    peer_secret = issued.json()["signing_secret"]
    assert (
        _eventually(
            lambda: _call(
                gw, peer["key"], "GET", VAULT + "/secrets", secret=peer_secret, key_id=peer["id"]
            ),
            200,
        ).status_code
        == 200
    )
    # ... but not to a data-plane key, another tenant's admin key, or the operator's key.
    tenant_key = Admin(gw).key(tenant)["id"]
    other = Admin(gw).key(Admin(gw).tenant(), kind="admin")["id"]
    for target in (tenant_key, other, _operator_id(gw), "nope"):
        assert issue(target).status_code == 404, target
    # The operator's root signs only for the operator's keys.
    root = _call(gw, key, "GET", VAULT + "/secrets", secret=ADMIN_SIGNING_SECRET, key_id=key_id)
    assert root.status_code == 401


def test_the_cli_rotates_with_a_signed_request(gw: RunningGateway, tmp_path: Any) -> None:
    key, key_id, secret = _tenant_admin(gw)
    _eventually(
        lambda: _call(gw, key, "GET", VAULT + "/secrets", secret=secret, key_id=key_id), 200
    )
    env = {k: v for k, v in os.environ.items() if not k.startswith("RELAYGATE_")}
    env.update(RELAYGATE_URL=gw.base_url, RELAYGATE_ADMIN_KEY=key)

    def cli(*args: str, signing: str | None) -> subprocess.CompletedProcess[str]:
        run_env = dict(env)
        if signing is not None:
            run_env["RELAYGATE_ADMIN_SIGNING_SECRET"] = signing
        return subprocess.run(
            [sys.executable, "-m", "relaygate", "vault", "signing-secret", *args],
            capture_output=True,
            text=True,
            env=run_env,
            timeout=60,
            check=False,
        )

    missing = cli(signing=None)
    assert missing.returncode == 1 and "RELAYGATE_ADMIN_SIGNING_SECRET" in missing.stderr
    wrong = cli(signing="z" * 43)
    assert wrong.returncode == 1 and "does not match" in wrong.stderr
    done = cli("--overlap-s", "60", signing=secret)
    assert done.returncode == 0, done.stderr
    assert "the previous secret keeps working until" in done.stdout
    new = done.stdout.strip().splitlines()[-1]
    assert len(new) == 43 and new != secret
    root = subprocess.run(
        [sys.executable, "-m", "relaygate", "vault", "root-secret"],
        capture_output=True,
        text=True,
        timeout=60,
        check=True,
    )
    assert len(root.stdout.strip()) == 43
