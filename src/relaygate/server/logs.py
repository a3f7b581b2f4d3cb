"""One log format for every gateway process: `serve`, its workers, and `relaygate worker`."""

from __future__ import annotations

import logging

FORMAT = "%(asctime)s %(levelname)s %(name)s: %(message)s"


def configure_logging(level: str) -> None:
    """Send this process's records at `level` and above to stderr (uvicorn keeps its own)."""
    logging.basicConfig(level=level.upper(), format=FORMAT)
