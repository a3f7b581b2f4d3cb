"""Build provider instances from configuration: one module per provider type."""

from __future__ import annotations

from collections.abc import Mapping

from relaygate.config.schema import ProviderConfig
from relaygate.providers.base import Provider
from relaygate.tokens.counter import TokenCounter


def build_provider(
    config: ProviderConfig, secrets: Mapping[str, str], counter: TokenCounter
) -> Provider:
    """The provider implementation for `config.type`."""
    # Imported here so a deployment only loads the provider modules it configures.
    if config.type == "simulator":
        from relaygate.providers.simulator import SimulatorProvider

        return SimulatorProvider(config, counter)
    if config.type == "anthropic":
        from relaygate.providers.anthropic import AnthropicProvider

        return AnthropicProvider(config, secrets)
    if config.type == "gemini":
        from relaygate.providers.gemini import GeminiProvider

        return GeminiProvider(config, secrets)
    if config.type == "azure":
        from relaygate.providers.azure import AzureOpenAIProvider

        return AzureOpenAIProvider(config, secrets)
    if config.type == "openai":
        from relaygate.providers.openai import OpenAIProvider

        return OpenAIProvider(config, secrets)
    from relaygate.providers.openai_compat import OpenAICompatibleProvider

    return OpenAICompatibleProvider(config, secrets)
