"""An `UpstreamClient` for one test provider, with the settings a test needs."""

from __future__ import annotations

from collections.abc import Iterable

from relaygate.config.schema import ProviderConfig
from relaygate.providers.http import UpstreamClient


def provider_config(base: str, **settings: object) -> ProviderConfig:
    """An OpenAI-compatible provider `p` with one model `m` at `base`."""
    return ProviderConfig.model_validate(
        {
            "name": "p",
            "type": "openai_compatible",
            "base_url": base,
            "models": [{"name": "m"}],
            **settings,
        }
    )


def upstream_client(
    base: str, api_key: str, secrets: Iterable[str] = (), **settings: object
) -> UpstreamClient:
    """A client for `provider_config(base, **settings)` sending `api_key` as a bearer token."""
    return UpstreamClient(
        provider_config(base, **settings), base, {"Authorization": f"Bearer {api_key}"}, secrets
    )
