"""Shared fixtures: fake upstreams in background threads and one real gateway process."""

from __future__ import annotations

from collections.abc import AsyncIterator, Iterator
from pathlib import Path

import openai
import pytest
import redis.asyncio as redis

from tests.fakes.openai import API_KEY, FakeOpenAI
from tests.support.gateway import RunningGateway, start_gateway, suite_config
from tests.support.servers import serve_in_thread
from tests.support.services import delete_prefix, unique_prefix


@pytest.fixture(scope="session")
def fake_openai() -> Iterator[tuple[FakeOpenAI, str]]:
    """The fake OpenAI upstream and its base URL."""
    fake = FakeOpenAI()
    with serve_in_thread(fake.app) as url:
        yield fake, url


@pytest.fixture(scope="session")
def gateway(
    tmp_path_factory: pytest.TempPathFactory, fake_openai: tuple[FakeOpenAI, str]
) -> Iterator[RunningGateway]:
    """One gateway process for the session, configured with the simulator and the fakes."""
    tmp: Path = tmp_path_factory.mktemp("gateway")
    running = start_gateway(tmp, suite_config(fake_openai[1]), env={"FAKE_OPENAI_KEY": API_KEY})
    yield running
    running.stop()


@pytest.fixture
def client(gateway: RunningGateway) -> openai.OpenAI:
    """The official OpenAI SDK pointed at the gateway."""
    return openai.OpenAI(base_url=gateway.v1, api_key=gateway.key, max_retries=0)


@pytest.fixture
async def aclient(gateway: RunningGateway) -> AsyncIterator[openai.AsyncOpenAI]:
    """The official async OpenAI SDK pointed at the gateway (closed after the test, so its
    connections do not linger in the session's event loop)."""
    client = openai.AsyncOpenAI(base_url=gateway.v1, api_key=gateway.key, max_retries=0)
    yield client
    await client.close()


@pytest.fixture(scope="session")
def redis_url() -> Iterator[str]:
    """A real Redis (the machine's, or a throwaway one); CI never skips."""
    from tests.support.services import redis_server

    with redis_server() as url:
        yield url


@pytest.fixture(scope="session")
def postgres_url() -> Iterator[str]:
    """A fresh database on a real PostgreSQL (SQLAlchemy asyncpg URL); CI never skips."""
    from tests.support.services import postgres_database

    with postgres_database() as url:
        yield url


@pytest.fixture(params=["sqlite", "postgresql"])
def database_url(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[str]:
    """Each storage test runs on the embedded SQLite and on a fresh PostgreSQL database."""
    if request.param == "sqlite":
        yield f"sqlite+aiosqlite:///{(tmp_path / 'relaygate.db').as_posix()}"
        return
    from tests.support.services import postgres_database

    with postgres_database() as url:
        yield url


@pytest.fixture
async def redis_client(redis_url: str) -> AsyncIterator[redis.Redis]:
    """A client for the test Redis."""
    client = redis.Redis.from_url(redis_url)
    yield client
    await client.aclose()


@pytest.fixture
async def prefix(redis_client: redis.Redis) -> AsyncIterator[str]:
    """A key prefix of this test alone; its keys are removed afterwards."""
    value = unique_prefix()
    yield value
    await delete_prefix(redis_client, value)
