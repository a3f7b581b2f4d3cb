"""Run the gateway under uvicorn (uvloop + httptools): bootstrap, banner, then serve.

On Linux (or with several workers) the process then becomes the supervisor of worker processes
(server/supervisor.py), which can replace a worker whose memory stayed grown (server/recycle.py);
otherwise it serves in this process.
"""

from __future__ import annotations

import asyncio
import os
import sys

import uvicorn
from sqlalchemy.exc import DBAPIError

from relaygate.app import create_app
from relaygate.config.loader import ConfigError, log_routes_in_effect
from relaygate.config.schema import GatewayConfig
from relaygate.config.secrets import provider_secrets
from relaygate.observability.setup import resolve_format
from relaygate.server.banner import banner
from relaygate.server.bootstrap import bootstrap, environ
from relaygate.server.logs import configure_logging
from relaygate.server.supervisor import uvicorn_options
from relaygate.store.database import shown_location
from relaygate.store.keys import ChosenKeyError
from relaygate.vault.master_key import MasterKeyError


def serve(config: GatewayConfig, config_path: str | None) -> int:
    """Bootstrap, print the banner, and serve until stopped. Returns the exit code."""
    server = config.server
    configure_logging(config)
    log_routes_in_effect(config, config_path)
    try:
        provider_secrets(config, environ())
    except ConfigError as exc:
        print(exc.explain(), file=sys.stderr)
        return 1
    try:
        result = asyncio.run(bootstrap(config, environ()))
    except ChosenKeyError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 1
    except MasterKeyError as exc:
        print(f"master key: {exc}", file=sys.stderr)
        return 1
    except (DBAPIError, OSError) as exc:
        where = shown_location(server.resolved_database_url())
        reason = str(getattr(exc, "orig", None) or exc).splitlines()[0][:200]
        print(f"error: cannot start (database {where}): {reason}", file=sys.stderr)
        return 1
    first_model = (
        config.routes[0].name
        if config.routes
        else (f"{config.providers[0].name}/{config.providers[0].models[0].name}")
    )
    print(banner(f"http://{server.host}:{server.port}", result, first_model), flush=True)
    if server.workers > 1 or (server.recycle.enabled and sys.platform == "linux"):
        # Workers are separate processes: they rebuild the config from the same file and env.
        if config_path:
            os.environ["RELAYGATE_CONFIG"] = config_path
        os.environ["RELAYGATE_HOST"] = server.host
        os.environ["RELAYGATE_PORT"] = str(server.port)
        sys.stdout.flush()
        sys.stderr.flush()
        # Become the lean supervisor (same pid; nothing of the gateway stays loaded in it).
        os.execv(  # noqa: S606 (our own interpreter and module, no shell)
            sys.executable,
            [
                sys.executable,
                "-m",
                "relaygate.server.supervisor",
                f"--host={server.host}",
                f"--port={server.port}",
                f"--workers={server.workers}",
                f"--log-level={server.log_level}",
                f"--log-format={resolve_format(config.logging.format)}",
            ],
        )
    uvicorn.run(create_app(config), **uvicorn_options(server.host, server.port, server.log_level))
    return 0
