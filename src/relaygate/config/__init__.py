"""Configuration: one YAML file, environment overrides, validated completely at startup."""

from relaygate.config.loader import ConfigError, load_config
from relaygate.config.schema import (
    GatewayConfig,
    ModelConfig,
    ProviderConfig,
    RouteConfig,
    ServerConfig,
)

__all__ = [
    "ConfigError",
    "GatewayConfig",
    "ModelConfig",
    "ProviderConfig",
    "RouteConfig",
    "ServerConfig",
    "load_config",
]
