"""Engine creation and schema migration."""

from __future__ import annotations

import asyncio
from pathlib import Path

from alembic import command
from alembic.config import Config
from alembic.runtime.migration import MigrationContext
from alembic.script import ScriptDirectory
from sqlalchemy import event
from sqlalchemy.engine import make_url
from sqlalchemy.exc import DBAPIError
from sqlalchemy.ext.asyncio import AsyncEngine, async_sessionmaker, create_async_engine

from relaygate.store.errors import DatabaseNotReady
from relaygate.store.startup_lock import startup_lock


def _sqlite_pragmas(dbapi_connection: object, _record: object) -> None:
    cursor = dbapi_connection.cursor()  # type: ignore[attr-defined]
    cursor.execute("PRAGMA journal_mode=WAL")
    cursor.execute("PRAGMA synchronous=NORMAL")
    cursor.execute("PRAGMA foreign_keys=ON")
    cursor.execute("PRAGMA busy_timeout=5000")
    cursor.close()


def create_engine(url: str) -> AsyncEngine:
    """An async engine; SQLite gets WAL mode so readers never block the writer."""
    parsed = make_url(url)
    if parsed.get_backend_name() == "sqlite":
        if parsed.database and parsed.database != ":memory:":
            Path(parsed.database).parent.mkdir(parents=True, exist_ok=True)
        # One connection: SQLite has one writer at a time, and several connections of the same
        # process would queue for it in SQLite's busy handler, which sleeps in steps of up to
        # 100 ms. Through one connection, statements queue in order, without sleeping.
        engine = create_async_engine(url, pool_size=1, max_overflow=0, pool_timeout=60)
        event.listen(engine.sync_engine, "connect", _sqlite_pragmas)
        return engine
    return create_async_engine(url, pool_size=5, max_overflow=5, pool_pre_ping=True)


def sessionmaker(engine: AsyncEngine) -> async_sessionmaker:  # type: ignore[type-arg]
    """A session factory that keeps objects usable after commit."""
    return async_sessionmaker(engine, expire_on_commit=False)


def _alembic_config(url: str) -> Config:
    config = Config()
    config.set_main_option("script_location", "relaygate.store:migrations")
    config.set_main_option("sqlalchemy.url", url.replace("%", "%%"))
    return config


def migrate(url: str) -> None:
    """Bring the database at `url` to the newest schema (blocking; run before serving)."""
    command.upgrade(_alembic_config(url), "head")


async def migrate_async(url: str) -> None:
    """`migrate` from async code (Alembic's env runs its own event loop, so use a thread)."""
    await asyncio.to_thread(migrate, url)


async def current_revision(url: str) -> str | None:
    """The schema revision the database holds (None: no Relaygate schema yet)."""
    engine = create_engine(url)
    try:
        async with engine.connect() as connection:
            revision: str | None = await connection.run_sync(
                lambda sync: MigrationContext.configure(sync).get_current_revision()
            )
            return revision
    finally:
        await engine.dispose()


async def migrate_if_behind(url: str) -> None:
    """Run the migrations unless the schema is current (call it holding the startup lock)."""
    if await current_revision(url) != await asyncio.to_thread(head_revision, url):
        await migrate_async(url)


async def migrate_exclusively(url: str) -> None:
    """Bring the schema to head, one process at a time (store/startup_lock.py). A process that
    finds it current, as every replica and worker after the first does, takes no lock."""
    if await current_revision(url) == await asyncio.to_thread(head_revision, url):
        return
    async with startup_lock(url):
        await migrate_if_behind(url)


def shown_location(url: str) -> str:
    """Where `url` points, fit to print: the absolute file of SQLite, else the URL without its
    password."""
    parsed = make_url(url)
    if parsed.get_backend_name() == "sqlite" and parsed.database:
        return str(Path(parsed.database).resolve())
    return parsed.render_as_string(hide_password=True)


def head_revision(url: str) -> str | None:
    """The newest schema revision this version of Relaygate knows."""
    return ScriptDirectory.from_config(_alembic_config(url)).get_current_head()


async def require_current_schema(url: str) -> None:
    """Refuse (DatabaseNotReady) unless `url` is a Relaygate database at this version's schema.

    Nothing is created: a SQLite file that does not exist stays absent, and no migration runs
    (`relaygate serve` migrates, under the startup lock, on its start)."""
    where = shown_location(url)
    parsed = make_url(url)
    if parsed.get_backend_name() == "sqlite":
        if not parsed.database or parsed.database == ":memory:":
            raise DatabaseNotReady("an in-memory SQLite database holds nothing for this command")
        if not await asyncio.to_thread(Path(parsed.database).is_file):
            raise DatabaseNotReady(f"no Relaygate database at {where}")
    try:
        found = await current_revision(url)
    except (DBAPIError, OSError) as exc:
        reason = str(getattr(exc, "orig", None) or exc).splitlines()[0][:200]
        raise DatabaseNotReady(f"cannot open the database {where}: {reason}") from None
    head = await asyncio.to_thread(head_revision, url)
    if found is None:
        raise DatabaseNotReady(f"the database {where} holds no Relaygate schema yet")
    if found != head:
        raise DatabaseNotReady(
            f"the database {where} is at schema revision {found}, this version of Relaygate"
            f" expects {head}: start `relaygate serve` of this version once (it migrates), or use"
            " the matching version of the command"
        )
