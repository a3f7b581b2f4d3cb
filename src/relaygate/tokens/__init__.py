"""Offline token counting."""

from relaygate.tokens.counter import TokenCounter

__all__ = ["TokenCounter"]
