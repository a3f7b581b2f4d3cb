"""Credential failures are the tenant's (CredentialError, documented status), never a 500, and
never the deployment's: from the vault broker and from providers refusing a vault-held key."""

from __future__ import annotations

from collections.abc import AsyncIterator, Iterator
from dataclasses import replace
from pathlib import Path
from typing import Any

import pytest
from aiohttp import web

from relaygate.config.schema import ModelConfig, ProviderConfig
from relaygate.errors import CredentialError, UpstreamError
from relaygate.providers.credentials import VaultCredentials
from relaygate.providers.gemini import GeminiProvider
from relaygate.providers.openai_compat import OpenAICompatibleProvider
from relaygate.routing.outcome import Outcome, classify
from relaygate.vault.broker import CredentialBroker
from relaygate.vault.envelope import SealedSecret, SecretAddress, encrypt
from relaygate.vault.kms.local import LocalKEK
from relaygate.vault.scope import RequestScope, request_scope
from relaygate.vault.snapshot import ActiveSecret, VaultSnapshot
from tests.fakes.gemini import FakeGemini
from tests.fakes.keyed_upstream import Upstream
from tests.support.servers import serve_in_thread

GOOD = "sk-good-credential-0123456789"
REVOKED = "sk-revoked-credential-0123456789"
BODY = {"model": "m", "messages": [{"role": "user", "content": "hi"}]}
SCOPE = RequestScope("acme", "production", "key_1", "req_1")


class FixedBroker:
    """Hands out one value for every credential."""

    def __init__(self, value: str) -> None:
        self.value = value

    async def resolve(self, provider: str, name: str) -> str:
        return self.value


@pytest.fixture(scope="module")
def keyed() -> Iterator[tuple[Upstream, str]]:
    upstream = Upstream(valid={GOOD})
    app = web.Application()
    app.router.add_post("/v1/chat/completions", upstream.chat)
    with serve_in_thread(app) as base:
        yield upstream, base


@pytest.fixture
async def openai_like(keyed: tuple[Upstream, str]) -> AsyncIterator[OpenAICompatibleProvider]:
    config = ProviderConfig(
        name="shared",
        type="openai_compatible",
        base_url=keyed[1] + "/v1",
        models=[ModelConfig(name="m")],
    )
    provider = OpenAICompatibleProvider(config, {})
    yield provider
    await provider.aclose()


def _vault(provider: Any, value: str) -> None:
    provider.client.vault = VaultCredentials(
        "shared", {}, {"api_key": "openai"}, FixedBroker(value), provider.auth_headers
    )


async def test_a_rejected_vault_key_is_the_tenants_fault(
    openai_like: OpenAICompatibleProvider,
) -> None:
    _vault(openai_like, REVOKED)
    with request_scope(replace(SCOPE, revealed=[])), pytest.raises(CredentialError) as info:
        await openai_like.chat(BODY, ModelConfig(name="m"))
    assert (info.value.status, info.value.code) == (403, "credential_rejected")
    assert REVOKED not in info.value.message
    assert classify(info.value) is Outcome.CREDENTIAL_FAULT


async def test_a_rejected_configured_key_is_the_deployments_fault(
    keyed: tuple[Upstream, str],
) -> None:
    config = ProviderConfig(
        name="shared",
        type="openai_compatible",
        base_url=keyed[1] + "/v1",
        models=[ModelConfig(name="m")],
    )
    provider = OpenAICompatibleProvider(config, {"api_key": REVOKED})
    try:
        with pytest.raises(UpstreamError) as info:
            await provider.chat(BODY, ModelConfig(name="m"))
    finally:
        await provider.aclose()
    assert not isinstance(info.value, CredentialError)
    assert (info.value.status, info.value.code) == (502, "upstream_auth_failed")
    assert classify(info.value) is Outcome.PROVIDER_FAULT


async def test_a_vault_value_that_is_no_header_is_a_503(
    openai_like: OpenAICompatibleProvider,
) -> None:
    _vault(openai_like, "sk-split\r\nX-Injected: 1")
    with pytest.raises(CredentialError) as info:
        await openai_like.chat(BODY, ModelConfig(name="m"))
    assert (info.value.status, info.value.code) == (503, "credential_unavailable")
    assert "Injected" not in info.value.message


async def test_gemini_refusing_a_vault_key_is_the_tenants_fault() -> None:
    fake = FakeGemini()
    with serve_in_thread(fake.app) as url:
        config = ProviderConfig(
            name="gem",
            type="gemini",
            base_url=url + "/v1beta",
            api_key="vault:gemini",
            models=[ModelConfig(name="flash", upstream="gemini-text")],
        )
        provider = GeminiProvider(config, {})
        _vault(provider, REVOKED)
        try:
            with pytest.raises(CredentialError) as info:
                await provider.chat(BODY, config.models[0])
        finally:
            await provider.aclose()
    assert (info.value.status, info.value.code) == (403, "credential_rejected")


@pytest.fixture
async def broker(tmp_path: Path) -> CredentialBroker:
    kek = LocalKEK.open({}, tmp_path)
    address = SecretAddress("acme", "production", "openai", 1)
    sealed = await encrypt(kek, address, GOOD.encode())
    tampered = SealedSecret(
        sealed.wrapped, sealed.ciphertext[:-1] + bytes([sealed.ciphertext[-1] ^ 1])
    )
    other = SecretAddress("acme", "staging", "openai", 1)
    snapshot = VaultSnapshot(
        owned={
            ("acme", "production", "openai"): ActiveSecret("sec_1", address, sealed),
            ("acme", "staging", "openai"): ActiveSecret("sec_2", other, tampered),
        }
    )
    return CredentialBroker(kek, snapshot, None)


async def test_the_broker_answers_each_credential_failure_with_its_own_status(
    broker: CredentialBroker,
) -> None:
    with request_scope(replace(SCOPE, revealed=[])):
        assert await broker.resolve("shared", "openai") == GOOD
        with pytest.raises(CredentialError) as missing:
            await broker.resolve("shared", "anthropic")
    with pytest.raises(CredentialError) as no_tenant:
        await broker.resolve("shared", "openai")
    staging = RequestScope("acme", "staging", "key_2", "req_2")
    with request_scope(staging), pytest.raises(CredentialError) as undecryptable:
        await broker.resolve("shared", "openai")
    assert (missing.value.status, missing.value.code) == (403, "credential_not_granted")
    assert (no_tenant.value.status, no_tenant.value.code) == (403, "credential_not_granted")
    assert (undecryptable.value.status, undecryptable.value.code) == (503, "credential_unavailable")
    for error in (missing.value, no_tenant.value, undecryptable.value):
        assert GOOD not in error.message
        assert classify(error) is Outcome.CREDENTIAL_FAULT
