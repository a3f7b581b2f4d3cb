"""Install the log handler: the part of the setup the lean supervisor process needs too (it
imports this, the formats and the redaction, and nothing else of the gateway)."""

from __future__ import annotations

import logging
import sys
from typing import TextIO

from relaygate.observability.log_format import JsonFormatter, TextFormatter
from relaygate.observability.redaction import RedactingFilter, Redactor

FORMAT_ENV = "RELAYGATE_LOG_FORMAT"
# uvicorn's loggers: their records reach the root handler like every other logger's, except
# its access log, which the gateway's own replaces (observability/access.py).
UVICORN_LOGGERS = ("uvicorn", "uvicorn.error", "uvicorn.asgi")
UVICORN_ACCESS = "uvicorn.access"


def resolve_format(setting: str, stream: TextIO | None = None) -> str:
    """`json` or `text`: `auto` is text on a terminal and JSON anywhere else."""
    if setting != "auto":
        return setting
    stream = sys.stderr if stream is None else stream
    try:
        return "text" if stream.isatty() else "json"
    except (AttributeError, ValueError):
        return "json"


def install(
    log_format: str, level: str, redactor: Redactor | None, stream: TextIO | None = None
) -> logging.Handler:
    """Replace the root logger's handlers by one writing `log_format` to `stream` (stderr)."""
    handler = logging.StreamHandler(sys.stderr if stream is None else stream)
    handler.setFormatter(JsonFormatter() if log_format == "json" else TextFormatter())
    if redactor is not None:
        handler.addFilter(RedactingFilter(redactor))
    root = logging.getLogger()
    for old in list(root.handlers):
        root.removeHandler(old)
    root.addHandler(handler)
    root.setLevel(level.upper())
    for name in UVICORN_LOGGERS:
        logger = logging.getLogger(name)
        for old in list(logger.handlers):
            logger.removeHandler(old)
        logger.setLevel(logging.NOTSET)  # the configured level, not one an earlier setup left
        logger.disabled = False
        logger.propagate = True
    uvicorn_access = logging.getLogger(UVICORN_ACCESS)
    for old in list(uvicorn_access.handlers):
        uvicorn_access.removeHandler(old)
    uvicorn_access.propagate = False
    return handler
