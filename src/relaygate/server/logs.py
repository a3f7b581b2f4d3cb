"""One log setup for every gateway process: `serve`, its supervisor and workers, and
`relaygate worker` (docs/observability.md#logs, decision 0031).

Records of every logger (the gateway's, uvicorn's, libraries') go to stderr through one handler:
one JSON object per line, or text for a terminal (`logging.format`, `RELAYGATE_LOG_FORMAT`),
after the redaction filter (`logging.redact`, on by default). uvicorn is started with
`log_config=None`, so it adds no handler of its own and its records take this path too.
"""

from __future__ import annotations

import logging
import os
from collections.abc import Mapping

from relaygate.config.schema import GatewayConfig
from relaygate.observability.redaction import Redactor
from relaygate.observability.setup import install, resolve_format
from relaygate.privacy.pseudonym import Pseudonymizer


def configure_logging(
    config: GatewayConfig, environ: Mapping[str, str] | None = None
) -> logging.Handler:
    """Set this process's logging from `config` (`server.log_level`, `logging`, `privacy`)."""
    environ = os.environ if environ is None else environ
    settings = config.logging
    redactor = None
    if settings.redact:
        pseudonym = (
            Pseudonymizer.open(environ, config.server.data_dir) if config.privacy.hash_pii else None
        )
        redactor = Redactor(pseudonym)
    handler = install(resolve_format(settings.format), config.server.log_level, redactor)
    if not settings.redact:
        logging.getLogger("relaygate.logs").warning(
            "logging.redact is off: secrets and personal data may be written to the logs"
        )
    return handler
