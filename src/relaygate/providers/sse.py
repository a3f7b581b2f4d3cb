"""An incremental Server-Sent Events decoder (WHATWG event-stream rules) with a size bound."""

from __future__ import annotations

from dataclasses import dataclass

from relaygate.errors import UpstreamError


@dataclass(slots=True)
class SSEEvent:
    """One dispatched event."""

    data: str
    event: str = "message"
    id: str | None = None


class SSEDecoder:
    """Feed bytes as they arrive, get back complete events; bounded against a broken peer."""

    __slots__ = ("_buffer", "_data", "_event", "_id", "_max_event_bytes", "_pending_size")

    def __init__(self, max_event_bytes: int = 8 * 1024 * 1024) -> None:
        self._buffer = b""
        self._data: list[str] = []
        self._event = ""
        self._id: str | None = None
        self._max_event_bytes = max_event_bytes
        self._pending_size = 0

    def feed(self, chunk: bytes) -> list[SSEEvent]:
        """Consume `chunk` and return the events it completed."""
        self._buffer += chunk
        events: list[SSEEvent] = []
        while True:
            cut = _line_end(self._buffer)
            if cut is None:
                break
            end, skip = cut
            line = self._buffer[:end].decode("utf-8", errors="replace")
            self._buffer = self._buffer[end + skip :]
            event = self._line(line)
            if event is not None:
                events.append(event)
        if len(self._buffer) + self._pending_size > self._max_event_bytes:
            raise UpstreamError(
                502,
                "upstream sent an oversized stream event",
                retryable=False,
                code="upstream_error",
            )
        return events

    def _line(self, line: str) -> SSEEvent | None:
        if line == "":
            if not self._data:
                self._event = ""
                return None
            event = SSEEvent(
                data="\n".join(self._data), event=self._event or "message", id=self._id
            )
            self._data = []
            self._event = ""
            self._pending_size = 0
            return event
        if line.startswith(":"):
            return None
        field, _, value = line.partition(":")
        value = value.removeprefix(" ")
        if field == "data":
            self._data.append(value)
            self._pending_size += len(value)
        elif field == "event":
            self._event = value
        elif field == "id" and "\0" not in value:
            self._id = value
        return None


def _line_end(buffer: bytes) -> tuple[int, int] | None:
    """Position and length of the first line terminator (CRLF, LF or CR)."""
    lf = buffer.find(b"\n")
    cr = buffer.find(b"\r")
    if cr == -1 and lf == -1:
        return None
    if cr != -1 and (lf == -1 or cr < lf):
        if cr + 1 == len(buffer):
            return None  # a CR at the end may be the first half of CRLF
        return (cr, 2) if buffer[cr + 1 : cr + 2] == b"\n" else (cr, 1)
    return (lf, 1)
