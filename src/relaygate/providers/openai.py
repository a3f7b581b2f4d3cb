"""OpenAI itself (api.openai.com)."""

from relaygate.providers.openai_compat import OpenAICompatibleProvider


class OpenAIProvider(OpenAICompatibleProvider):
    """api.openai.com: the OpenAI-compatible base with OpenAI's default URL."""

    default_base_url = "https://api.openai.com/v1"
