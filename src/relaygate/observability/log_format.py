"""The two log formats: one JSON object per line (for machines), or text (for a terminal).

Every record carries `time` (RFC 3339, UTC, milliseconds), `level`, `logger` and `message`,
then the fields passed with `extra=` (`request_id`, `tenant`, `route`, ...), then `exception`
(the traceback, already redacted) when there is one.
"""

from __future__ import annotations

import logging
import time
from typing import Any

import orjson

from relaygate.observability.redaction import STANDARD_ATTRIBUTES

# Extra fields that only make sense on a colour terminal (uvicorn adds one).
_DROPPED = frozenset({"color_message"})


def rfc3339(created: float) -> str:
    """`created` (seconds since the epoch) as `2026-01-31T12:00:00.123Z`."""
    seconds = int(created)
    millis = int((created - seconds) * 1000)
    return f"{time.strftime('%Y-%m-%dT%H:%M:%S', time.gmtime(seconds))}.{millis:03d}Z"


def extra_fields(record: logging.LogRecord) -> dict[str, Any]:
    """The `extra=` fields of `record` (not the attributes every record has)."""
    skip = STANDARD_ATTRIBUTES
    return {
        name: value
        for name, value in record.__dict__.items()
        if name not in skip and name[0] != "_" and name not in _DROPPED
    }


class JsonFormatter(logging.Formatter):
    """One JSON object per record, on one line."""

    def format(self, record: logging.LogRecord) -> str:
        entry: dict[str, Any] = {
            "time": rfc3339(record.created),
            "level": record.levelname.lower(),
            "logger": record.name,
            "message": record.getMessage(),
        }
        for name, value in extra_fields(record).items():
            entry.setdefault(name, value)
        if record.exc_info and not record.exc_text:
            record.exc_text = self.formatException(record.exc_info)
        if record.exc_text:
            entry["exception"] = record.exc_text
        if record.stack_info:
            entry["stack"] = record.stack_info
        return orjson.dumps(entry, default=str).decode()


class TextFormatter(logging.Formatter):
    """`time level logger: message key=value ...`, for reading in a terminal."""

    def format(self, record: logging.LogRecord) -> str:
        line = f"{rfc3339(record.created)} {record.levelname} {record.name}: {record.getMessage()}"
        fields = " ".join(
            f"{name}={value}" for name, value in extra_fields(record).items() if value is not None
        )
        if fields:
            line = f"{line} {fields}"
        if record.exc_info and not record.exc_text:
            record.exc_text = self.formatException(record.exc_info)
        if record.exc_text:
            line = f"{line}\n{record.exc_text}"
        if record.stack_info:
            line = f"{line}\n{record.stack_info}"
        return line
