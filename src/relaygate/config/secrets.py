"""Resolve secret references at startup: `env:NAME` into values (naming the key path on error);
`vault:NAME` references are listed for the credential broker, which resolves them per request."""

from __future__ import annotations

from collections.abc import Mapping

from relaygate.config.loader import ConfigError
from relaygate.config.schema import SECRET_REF, GatewayConfig, ProviderConfig


def _resolve(ref: str, environ: Mapping[str, str], where: str, problems: list[str]) -> str | None:
    scheme, _, name = ref.partition(":")
    if scheme == "env":
        value = environ.get(name)
        if not value:
            problems.append(f"{where}: environment variable {name} is not set")
        return value or None
    if scheme == "vault":
        return None  # resolved per request, in the request's tenant scope
    problems.append(f"{where}: unknown secret reference scheme '{scheme}:'")
    return None


def provider_secrets(
    config: GatewayConfig, environ: Mapping[str, str]
) -> dict[str, dict[str, str]]:
    """For each provider, a mapping of 'api_key' and 'header:NAME' to resolved values."""
    problems: list[str] = []
    resolved: dict[str, dict[str, str]] = {}
    for index, provider in enumerate(config.providers):
        resolved[provider.name] = _for_provider(provider, f"providers[{index}]", environ, problems)
    if problems:
        raise ConfigError("secrets", problems)
    return resolved


def _for_provider(
    provider: ProviderConfig, where: str, environ: Mapping[str, str], problems: list[str]
) -> dict[str, str]:
    out: dict[str, str] = {}
    if provider.api_key:
        value = _resolve(provider.api_key, environ, f"{where}.api_key", problems)
        if value:
            out["api_key"] = value
    for header, raw in provider.headers.items():
        if SECRET_REF.match(raw):
            value = _resolve(raw, environ, f"{where}.headers.{header}", problems)
            if value:
                out[f"header:{header}"] = value
    return out


def vault_references(provider: ProviderConfig) -> dict[str, str]:
    """'api_key' and 'header:NAME' entries whose value is a `vault:` reference, with its name."""
    refs: dict[str, str] = {}
    if provider.api_key and provider.api_key.startswith("vault:"):
        refs["api_key"] = provider.api_key.removeprefix("vault:")
    for header, raw in provider.headers.items():
        if raw.startswith("vault:") and SECRET_REF.match(raw):
            refs[f"header:{header}"] = raw.removeprefix("vault:")
    return refs
