"""Files of the Batch API: uploaded inputs (`batch`) and the outputs Relaygate writes."""

from __future__ import annotations

import secrets
from collections.abc import Sequence
from datetime import UTC, datetime
from typing import Any

from sqlalchemy import delete, select
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from relaygate.store.paging import newest_first
from relaygate.store.tables import StoredFile
from relaygate.store.timestamps import unix


def new_file(tenant_id: str, purpose: str, filename: str, content: bytes) -> StoredFile:
    """A file row (not yet stored)."""
    return StoredFile(
        id="file-" + secrets.token_urlsafe(18),
        tenant_id=tenant_id,
        purpose=purpose,
        filename=filename,
        size=len(content),
        content=content,
        created_at=datetime.now(UTC),
    )


def file_view(row: StoredFile) -> dict[str, Any]:
    """OpenAI's file object."""
    return {
        "id": row.id,
        "object": "file",
        "bytes": row.size,
        "created_at": unix(row.created_at),
        "filename": row.filename,
        "purpose": row.purpose,
        "status": "processed",
        "status_details": None,
    }


class FileStore:
    """Tenant-scoped file rows."""

    def __init__(self, sessions: async_sessionmaker[AsyncSession]) -> None:
        self.sessions = sessions

    async def add(self, row: StoredFile) -> StoredFile:
        async with self.sessions() as session, session.begin():
            session.add(row)
        return row

    async def get(self, file_id: str, tenant_id: str) -> StoredFile | None:
        async with self.sessions() as session:
            row = await session.get(StoredFile, file_id)
        return row if row is not None and row.tenant_id == tenant_id else None

    async def page(
        self, tenant_id: str, purpose: str | None, limit: int, after: str | None
    ) -> Sequence[StoredFile]:
        query = select(StoredFile).where(StoredFile.tenant_id == tenant_id)
        if purpose is not None:
            query = query.where(StoredFile.purpose == purpose)
        async with self.sessions() as session:
            return await newest_first(session, StoredFile, query, tenant_id, after, limit)

    async def delete(self, file_id: str, tenant_id: str) -> bool:
        async with self.sessions() as session, session.begin():
            done = await session.execute(
                delete(StoredFile).where(
                    StoredFile.id == file_id, StoredFile.tenant_id == tenant_id
                )
            )
            return bool(done.rowcount == 1)  # type: ignore[attr-defined]
