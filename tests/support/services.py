"""Real PostgreSQL and Redis for the scale-out tests.

The project machines and CI run both on 127.0.0.1. Elsewhere a throwaway instance is started when
the server binaries exist; otherwise the tests that need it are skipped with a loud reason. With
`CI=true` a missing service is an error, never a skip.
"""

from __future__ import annotations

import asyncio
import os
import shutil
import socket
import subprocess
import tempfile
import time
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import pytest

from tests.support.servers import free_port

IN_CI = os.environ.get("CI", "").lower() in {"1", "true", "yes"}


def unavailable(what: str, why: str) -> None:
    """Skip loudly, or fail in CI where every backend must be tested."""
    message = f"{what} unavailable ({why}): scale-out tests for it did NOT run"
    if IN_CI:
        pytest.fail(message + " - CI must run them", pytrace=False)
    print(f"\n*** SKIPPING: {message} ***")
    pytest.skip(message)


def _reachable(host: str, port: int) -> bool:
    try:
        with socket.create_connection((host, port), timeout=1):
            return True
    except OSError:
        return False


def _wait_port(port: int, deadline_s: float = 20.0) -> None:
    end = time.monotonic() + deadline_s
    while time.monotonic() < end:
        if _reachable("127.0.0.1", port):
            return
        time.sleep(0.1)
    raise RuntimeError(f"nothing listens on port {port} after {deadline_s} s")


@contextmanager
def redis_server() -> Iterator[str]:
    """A Redis URL: the machine's server if it answers, else a throwaway `redis-server`."""
    url = os.environ.get("RELAYGATE_TEST_REDIS_URL", "redis://127.0.0.1:6379/0")
    if _redis_ping(url):
        yield url
        return
    binary = shutil.which("redis-server")
    if binary is None:
        unavailable("Redis", f"nothing answers at {url} and redis-server is not installed")
    port = free_port()
    proc = subprocess.Popen(
        [binary, "--port", str(port), "--save", "", "--appendonly", "no", "--bind", "127.0.0.1"],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    try:
        _wait_port(port)
        yield f"redis://127.0.0.1:{port}/0"
    finally:
        proc.terminate()
        proc.wait(10)


def _redis_ping(url: str) -> bool:
    import redis

    try:
        client = redis.Redis.from_url(url, socket_connect_timeout=1)
        try:
            return bool(client.ping())
        finally:
            client.close()
    except Exception:
        return False


async def delete_prefix(client: Any, prefix: str) -> None:
    """Remove every key a test wrote (tests never flush a shared server)."""
    keys = [key async for key in client.scan_iter(match=f"{prefix}*")]
    if keys:
        await client.delete(*keys)


def unique_prefix() -> str:
    """A Redis key prefix no other test run uses (tests never flush a shared server)."""
    return f"rgtest:{uuid.uuid4().hex[:12]}:"


def _pg_admin_url(port: int, user: str) -> str:
    return f"postgresql://{user}@127.0.0.1:{port}/postgres"


async def _pg_exec(url: str, statement: str) -> None:
    import asyncpg

    conn = await asyncpg.connect(url, timeout=5)
    try:
        await conn.execute(statement)
    finally:
        await conn.close()


def _pg_ok(url: str) -> bool:
    try:
        asyncio.run(_pg_exec(url, "SELECT 1"))
        return True
    except Exception:
        return False


@contextmanager
def _throwaway_postgres() -> Iterator[tuple[int, str]]:
    initdb, pg_ctl = shutil.which("initdb"), shutil.which("pg_ctl")
    if initdb is None or pg_ctl is None:
        unavailable("PostgreSQL", "nothing answers on 127.0.0.1:5432 and initdb is not installed")
    assert initdb is not None and pg_ctl is not None
    with tempfile.TemporaryDirectory(prefix="relaygate-pg-") as tmp:
        data, port = Path(tmp) / "data", free_port()
        subprocess.run(
            [initdb, "-D", str(data), "-U", "postgres", "--auth=trust"],
            check=True,
            capture_output=True,
        )
        subprocess.run(
            [pg_ctl, "-D", str(data), "-o", f"-p {port} -k {tmp} -h 127.0.0.1", "-w", "start"],
            check=True,
            capture_output=True,
        )
        try:
            yield port, "postgres"
        finally:
            subprocess.run([pg_ctl, "-D", str(data), "-m", "fast", "stop"], capture_output=True)


@contextmanager
def postgres_database() -> Iterator[str]:
    """A fresh, empty PostgreSQL database (SQLAlchemy asyncpg URL), dropped afterwards."""
    port = int(os.environ.get("RELAYGATE_TEST_PG_PORT", "5432"))
    user = os.environ.get("RELAYGATE_TEST_PG_USER", "postgres")
    with contextmanager(_machine_or_throwaway)(port, user) as (port, user):
        name = f"relaygate_test_{uuid.uuid4().hex[:12]}"
        admin = _pg_admin_url(port, user)
        asyncio.run(_pg_exec(admin, f'CREATE DATABASE "{name}"'))
        try:
            yield f"postgresql+asyncpg://{user}@127.0.0.1:{port}/{name}"
        finally:
            asyncio.run(_pg_exec(admin, f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))


def _machine_or_throwaway(port: int, user: str) -> Iterator[tuple[int, str]]:
    if _pg_ok(_pg_admin_url(port, user)):
        yield port, user
        return
    with _throwaway_postgres() as found:
        yield found
