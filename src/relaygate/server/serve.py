"""Run the gateway under uvicorn (uvloop + httptools), one or several workers."""

from __future__ import annotations

import asyncio
import logging
import os
import sys
from typing import Any

import uvicorn

from relaygate.app import create_app
from relaygate.config.loader import ConfigError
from relaygate.config.schema import GatewayConfig
from relaygate.config.secrets import provider_secrets
from relaygate.server.banner import banner
from relaygate.server.bootstrap import bootstrap, environ
from relaygate.store.keys import KeyTooShortError
from relaygate.vault.master_key import MasterKeyError


def serve(config: GatewayConfig, config_path: str | None) -> int:
    """Bootstrap, print the banner, and serve until stopped. Returns the exit code."""
    server = config.server
    logging.basicConfig(
        level=server.log_level.upper(), format="%(asctime)s %(levelname)s %(name)s: %(message)s"
    )
    try:
        provider_secrets(config, environ())
    except ConfigError as exc:
        print(exc.explain(), file=sys.stderr)
        return 1
    try:
        result = asyncio.run(bootstrap(config, environ()))
    except KeyTooShortError as exc:
        print(f"RELAYGATE_DEFAULT_KEY / RELAYGATE_ADMIN_KEY: {exc}", file=sys.stderr)
        return 1
    except MasterKeyError as exc:
        print(f"master key: {exc}", file=sys.stderr)
        return 1
    first_model = (
        config.routes[0].name
        if config.routes
        else (f"{config.providers[0].name}/{config.providers[0].models[0].name}")
    )
    print(banner(f"http://{server.host}:{server.port}", result, first_model), flush=True)
    common: dict[str, Any] = {
        "host": server.host,
        "port": server.port,
        "log_level": server.log_level,
        "access_log": False,
        "loop": "uvloop",
        "http": "httptools",
        "timeout_graceful_shutdown": 30,
        "proxy_headers": False,
    }
    if server.workers > 1:
        # Workers are separate processes: they rebuild the config from the same file and env.
        if config_path:
            os.environ["RELAYGATE_CONFIG"] = config_path
        os.environ["RELAYGATE_HOST"] = server.host
        os.environ["RELAYGATE_PORT"] = str(server.port)
        uvicorn.run(
            "relaygate.app:create_app_from_env", factory=True, workers=server.workers, **common
        )
    else:
        uvicorn.run(create_app(config), **common)
    return 0
