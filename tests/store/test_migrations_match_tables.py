"""The Alembic migrations build exactly the schema the table classes declare.

A column added to `store/tables.py` without a migration (or a migration that differs from the
class) works in a test that creates tables from the classes and breaks an operator's upgrade;
this compares the migrated database with the classes on SQLite and PostgreSQL.
"""

from __future__ import annotations

from typing import Any

from alembic.autogenerate import compare_metadata
from alembic.migration import MigrationContext
from sqlalchemy.engine import Connection

from relaygate.store.database import create_engine, migrate_async
from relaygate.store.tables import Base


def _differences(connection: Connection) -> list[Any]:
    return list(compare_metadata(MigrationContext.configure(connection), Base.metadata))


async def test_the_migrated_schema_is_the_one_the_tables_declare(database_url: str) -> None:
    await migrate_async(database_url)
    engine = create_engine(database_url)
    try:
        async with engine.connect() as connection:
            differences = await connection.run_sync(_differences)
    finally:
        await engine.dispose()
    assert differences == []
