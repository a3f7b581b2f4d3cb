"""A migrated database (SQLite and PostgreSQL) and a journal directory for the usage tests."""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path

import pytest
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from relaygate.store.database import create_engine, migrate_async, sessionmaker


@pytest.fixture
async def sessions(database_url: str) -> AsyncIterator[async_sessionmaker[AsyncSession]]:
    """Sessions on a freshly migrated database."""
    await migrate_async(database_url)
    engine = create_engine(database_url)
    yield sessionmaker(engine)
    await engine.dispose()


@pytest.fixture
def journal(tmp_path: Path) -> Path:
    """Where the recorder under test keeps its journal."""
    return tmp_path / "usage-journal"
