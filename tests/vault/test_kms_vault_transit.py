"""The Vault transit KEK against a fake that speaks transit's HTTP API."""

from __future__ import annotations

import json
from collections.abc import AsyncIterator, Iterator
from pathlib import Path
from typing import Any

import httpx
import openai
import pytest
from aiohttp import web

from relaygate.auth.hmac_signing import sign_request
from relaygate.vault.envelope import EnvelopeError, SecretAddress, decrypt, encrypt
from relaygate.vault.kms.base import KMSError
from relaygate.vault.kms.vault_transit import VaultTransitKEK
from tests.fakes.keyed_upstream import Upstream
from tests.fakes.vault_transit import FakeVaultTransit
from tests.support.gateway import ADMIN_KEY, ADMIN_SIGNING_SECRET, start_gateway
from tests.support.servers import free_port, serve_in_thread

TOKEN = "hvs.fake-transit-token-0123456789"
ADDRESS = SecretAddress("acme", "production", "openai", 1)
VALUE = b"sk-transit-" + b"v" * 32


@pytest.fixture(scope="module")
def transit() -> Iterator[tuple[FakeVaultTransit, str]]:
    fake = FakeVaultTransit(TOKEN)
    with serve_in_thread(fake.app) as url:
        for name, derived in (("relaygate", True), ("plain", False)):
            response = httpx.post(
                f"{url}/v1/transit/keys/{name}",
                json={"derived": derived},
                headers={"X-Vault-Token": TOKEN},
            )
            assert response.status_code == 204
        yield fake, url


@pytest.fixture
async def kek(transit: tuple[FakeVaultTransit, str]) -> AsyncIterator[VaultTransitKEK]:
    client = VaultTransitKEK(transit[1], TOKEN, "relaygate")
    yield client
    await client.aclose()


async def test_round_trip_binds_the_context(kek: VaultTransitKEK) -> None:
    await kek.check()
    sealed = await encrypt(kek, ADDRESS, VALUE)
    assert sealed.wrapped.blob.startswith(b"vault:v")
    assert sealed.wrapped.kek_id == "vault-transit:transit/relaygate"
    assert await decrypt(kek, ADDRESS, sealed) == VALUE
    moved = SecretAddress("globex", "production", "openai", 1)
    with pytest.raises(EnvelopeError, match="message authentication failed"):
        await decrypt(kek, moved, sealed)


async def test_rotation_rewraps_inside_vault_and_retires(
    kek: VaultTransitKEK, transit: tuple[FakeVaultTransit, str]
) -> None:
    fake = transit[0]
    sealed = await encrypt(kek, ADDRESS, VALUE)
    before = await kek.current_version()
    version = await kek.rotate()
    assert version == before + 1
    rewraps = fake.calls.get("rewrap", 0)
    rewrapped = await kek.rewrap(sealed.wrapped, ADDRESS.associated_data())
    assert fake.calls["rewrap"] == rewraps + 1  # Vault did it; no decrypt call on our side
    assert rewrapped.kek_version == version
    await kek.retire_below(version)
    with pytest.raises(EnvelopeError, match="too old"):
        await decrypt(kek, ADDRESS, sealed)
    sealed_again = type(sealed)(rewrapped, sealed.ciphertext)
    assert await decrypt(kek, ADDRESS, sealed_again) == VALUE


async def test_a_key_without_derivation_is_refused(transit: tuple[FakeVaultTransit, str]) -> None:
    client = VaultTransitKEK(transit[1], TOKEN, "plain")
    try:
        with pytest.raises(KMSError, match="derived=true"):
            await client.check()
    finally:
        await client.aclose()


async def test_errors_never_contain_the_token(transit: tuple[FakeVaultTransit, str]) -> None:
    wrong = "hvs.wrong-token-must-not-leak-987654"
    client = VaultTransitKEK(transit[1], wrong, "relaygate")
    try:
        with pytest.raises(KMSError) as info:
            await encrypt(client, ADDRESS, VALUE)
        assert "403" in str(info.value) and wrong not in str(info.value)
    finally:
        await client.aclose()
    unreachable = VaultTransitKEK(f"http://127.0.0.1:{free_port()}", TOKEN, "relaygate")
    try:
        with pytest.raises(KMSError, match="unreachable"):
            await unreachable.current_version()
    finally:
        await unreachable.aclose()


def test_a_gateway_keeps_its_vault_under_transit(
    transit: tuple[FakeVaultTransit, str], tmp_path: Path
) -> None:
    fake, url = transit
    upstream = Upstream(valid={"sk-transit-e2e-value-0123456789"})
    app = web.Application()
    app.router.add_post("/v1/chat/completions", upstream.chat)
    with serve_in_thread(app) as base:
        config = {
            "server": {"policy_refresh_s": 0.3},
            "vault": {
                "kms": "vault_transit",
                "vault_transit": {"url": url, "token": "env:TEST_VAULT_TOKEN", "key": "relaygate"},
            },
            "providers": [
                {
                    "name": "vaulted",
                    "type": "openai_compatible",
                    "base_url": base + "/v1",
                    "api_key": "vault:openai",
                    "models": [{"name": "gpt-v"}],
                }
            ],
        }
        gw = start_gateway(tmp_path, config, env={"TEST_VAULT_TOKEN": TOKEN})
        try:
            admin = {"Authorization": f"Bearer {ADMIN_KEY}"}
            signing = ADMIN_SIGNING_SECRET
            key_id = httpx.get(gw.base_url + "/admin/v1/vault/whoami", headers=admin).json()[
                "key_id"
            ]

            def signed(method: str, path: str, body: dict[str, object] | None = None) -> Any:
                data = json.dumps(body).encode() if body is not None else b""
                headers = {**admin, **sign_request(signing, method, path, data, key_id=key_id)}
                if body is not None:
                    headers["Content-Type"] = "application/json"
                response = httpx.request(method, gw.base_url + path, content=data, headers=headers)
                assert response.status_code < 300, response.text
                return response.json()

            created = signed(
                "POST",
                "/admin/v1/vault/secrets",
                {
                    "name": "openai",
                    "value": "sk-transit-e2e-value-0123456789",
                    "tenant_id": "default",
                    "environment": "production",
                },
            )
            assert created["versions"][0]["kek_id"] == "vault-transit:transit/relaygate"
            client = openai.OpenAI(base_url=gw.v1, api_key=gw.key, max_retries=0)
            reply = client.chat.completions.create(
                model="gpt-v", messages=[{"role": "user", "content": "hi"}]
            )
            assert reply.choices[0].message.content == "ok"
            decrypts = fake.calls.get("decrypt", 0)
            rotated = signed("POST", "/admin/v1/vault/kek/rotate")
            assert rotated["rewrapped"] == 1
            assert fake.keys["relaygate"].min_decryption_version == rotated["version"]
            client.chat.completions.create(
                model="gpt-v", messages=[{"role": "user", "content": "hi"}]
            )
            assert fake.calls["decrypt"] > decrypts  # each request unwrapped through Vault
        finally:
            gw.stop()
        assert TOKEN not in gw.logs()
