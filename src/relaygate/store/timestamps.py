"""Stored times are UTC; SQLite hands them back naive."""

from __future__ import annotations

from datetime import UTC, datetime


def utc(moment: datetime) -> datetime:
    """`moment` as an aware UTC datetime."""
    return moment if moment.tzinfo else moment.replace(tzinfo=UTC)


def unix(moment: datetime | None) -> int | None:
    """Unix seconds of a stored time (None stays None)."""
    return int(utc(moment).timestamp()) if moment is not None else None
