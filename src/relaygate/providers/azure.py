"""Azure OpenAI: deployment names in the path, `api-version` query, `api-key` header."""

from __future__ import annotations

from collections.abc import Mapping
from urllib.parse import quote

from relaygate.config.schema import ModelConfig
from relaygate.providers.base import JSON
from relaygate.providers.openai_compat import OpenAICompatibleProvider, configured_headers


class AzureOpenAIProvider(OpenAICompatibleProvider):
    """Azure: `base_url` is https://NAME.openai.azure.com, `upstream` the deployment name."""

    def auth_headers(self, secrets: Mapping[str, str]) -> dict[str, str]:
        """Azure authenticates with an `api-key` header, not a bearer token."""
        headers = configured_headers(self.config, secrets)
        api_key = secrets.get("api_key")
        if api_key:
            headers["api-key"] = api_key
        return headers

    def _deployment(self, model: ModelConfig) -> str:
        return "/openai/deployments/" + quote(model.upstream_id, safe="")

    def chat_path(self, model: ModelConfig) -> str:
        """Chat completions of the model's deployment."""
        return self._deployment(model) + "/chat/completions"

    def embeddings_path(self, model: ModelConfig) -> str:
        """Embeddings of the model's deployment."""
        return self._deployment(model) + "/embeddings"

    def query_params(self) -> dict[str, str]:
        """Every Azure call names its API version."""
        return {"api-version": self.config.api_version or ""}

    def prepare(self, body: JSON, model: ModelConfig) -> JSON:
        """Azure takes the model from the deployment path; the body's `model` is dropped."""
        return {k: v for k, v in body.items() if k != "model"}
