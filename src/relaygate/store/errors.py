"""What the store refuses, as exceptions whose message a command prints as it is."""

from __future__ import annotations


class StoreRefusal(ValueError):
    """A change the store refuses (unknown tenant, existing tenant, ...): the message says why."""


class DatabaseNotReady(Exception):
    """A command that only uses an existing database found none (or one it cannot use)."""
