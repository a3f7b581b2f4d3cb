"""The one authentication failure: its reason is for the log, never for the caller."""

from __future__ import annotations

PUBLIC_MESSAGE = "invalid or missing credentials"


class AuthFailed(Exception):
    """Credentials were missing, malformed, wrong, expired or replayed.

    `reason` says which (for logs and tests); it never contains secrets or token contents.
    """

    def __init__(self, reason: str) -> None:
        super().__init__(PUBLIC_MESSAGE)
        self.reason = reason
