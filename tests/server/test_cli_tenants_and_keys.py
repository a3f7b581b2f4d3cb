"""`relaygate tenants ...` and `relaygate keys ...` run as a newcomer runs them (issue 31,
defect 4): nothing is created by accident, a new tenant gets its default environments, a command
pointed at a database that does not exist says so and stops, and keys can be listed and revoked.

Every command is the real CLI in a subprocess, next to a running gateway that must accept (or,
once revoked, refuse) what the CLI wrote.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from tests.support.gateway import RunningGateway, start_gateway
from tests.support.services import postgres_database


def _relaygate(
    *args: str, cwd: Path, data_dir: Path | None = None, **env: str
) -> subprocess.CompletedProcess[str]:
    clean = {k: v for k, v in os.environ.items() if not k.startswith("RELAYGATE_")}
    if data_dir is not None:
        clean["RELAYGATE_DATA_DIR"] = str(data_dir)
    return subprocess.run(
        [sys.executable, "-m", "relaygate", *args],
        cwd=cwd,
        env={**clean, **env},
        capture_output=True,
        text=True,
        timeout=120,
    )


def _ok(result: subprocess.CompletedProcess[str]) -> str:
    assert result.returncode == 0, result.stdout + result.stderr
    assert "Traceback" not in result.stderr
    return result.stdout


def _refused(result: subprocess.CompletedProcess[str], *fragments: str, code: int = 1) -> str:
    assert result.returncode == code, result.stdout + result.stderr
    assert "Traceback" not in result.stderr
    for fragment in fragments:
        assert fragment in result.stderr, result.stderr
    return result.stderr


def _created_key(output: str) -> tuple[str, str]:
    """(key id, key) from `keys create`: the key is the last line, shown once."""
    lines = output.strip().splitlines()
    assert "shown once" in lines[-2]
    return lines[-2].split("key id ", 1)[1].split()[0], lines[-1]


def _status(gw: RunningGateway, key: str) -> int:
    return httpx.get(gw.v1 + "/models", headers={"Authorization": f"Bearer {key}"}).status_code


def _eventually(gw: RunningGateway, key: str, status: int) -> None:
    """The gateway reloads its policy every `server.policy_refresh_s` (2 s by default)."""
    deadline = time.monotonic() + 10
    while _status(gw, key) != status:
        assert time.monotonic() < deadline, f"key still answers {_status(gw, key)}"
        time.sleep(0.2)


@pytest.fixture(scope="module")
def gateway_dir(tmp_path_factory: pytest.TempPathFactory) -> Iterator[RunningGateway]:
    running = start_gateway(tmp_path_factory.mktemp("cli"), None)
    yield running
    running.stop()


def test_from_another_directory_nothing_is_created_and_the_database_is_named(
    gateway_dir: RunningGateway, tmp_path: Path
) -> None:
    for command in (
        ["keys", "create", "--tenant", "default"],
        ["keys", "list"],
        ["keys", "revoke", "abc"],
        ["tenants", "create", "acme"],
        ["tenants", "list"],
    ):
        stderr = _refused(
            _relaygate(*command, cwd=tmp_path),
            f"no Relaygate database at {(tmp_path / 'data' / 'relaygate.db').resolve()}",
            "RELAYGATE_DATA_DIR",
            "--config",
        )
        assert "rg_live_" not in stderr
    assert list(tmp_path.iterdir()) == []  # no ./data, no database


def test_a_mistyped_tenant_is_refused_and_not_created(
    gateway_dir: RunningGateway, tmp_path: Path
) -> None:
    data = gateway_dir.data_dir
    _refused(
        _relaygate("keys", "create", "--tenant", "defualt", cwd=tmp_path, data_dir=data),
        "no tenant 'defualt'",
        "relaygate tenants create defualt",
        "--create-tenant",
    )
    listed = json.loads(_ok(_relaygate("tenants", "list", "--json", cwd=tmp_path, data_dir=data)))
    assert "defualt" not in [t["id"] for t in listed]
    _refused(
        _relaygate(
            *("keys", "create", "--tenant", "default", "--environment", "stagign"),
            cwd=tmp_path,
            data_dir=data,
        ),
        "tenant 'default' has no environment 'stagign' (it has: production)",
        "relaygate tenants add-environment default stagign",
    )
    _refused(
        _relaygate("keys", "create", "--tenant", "Bad Name!", cwd=tmp_path, data_dir=data),
        "tenant 'Bad Name!': 1-64 letters, digits",
        code=2,  # a usage error, as argparse reports every malformed argument
    )


def test_tenants_get_production_and_their_keys_work_until_revoked(
    gateway_dir: RunningGateway, tmp_path: Path
) -> None:
    data = gateway_dir.data_dir
    created = _ok(
        _relaygate(
            *("tenants", "create", "acme", "--environment", "staging"), cwd=tmp_path, data_dir=data
        )
    )
    assert "tenant 'acme' created with environments production, staging" in created
    _refused(
        _relaygate("tenants", "create", "acme", cwd=tmp_path, data_dir=data),
        "tenant 'acme' already exists",
    )
    # --create-tenant with a non-production environment still gives the tenant production.
    _ok(
        _relaygate(
            "keys",
            "create",
            "--tenant",
            "blog",
            "--environment",
            "staging",
            "--create-tenant",
            cwd=tmp_path,
            data_dir=data,
        )
    )
    _ok(_relaygate("tenants", "add-environment", "blog", "preview", cwd=tmp_path, data_dir=data))
    tenants = json.loads(_ok(_relaygate("tenants", "list", "--json", cwd=tmp_path, data_dir=data)))
    environments = {t["id"]: t["environments"] for t in tenants}
    assert environments["acme"] == ["production", "staging"]
    assert environments["blog"] == ["preview", "production", "staging"]
    _refused(
        _relaygate(
            "keys", "create", "--tenant", "blog", "--create-tenant", cwd=tmp_path, data_dir=data
        ),
        "tenant 'blog' already exists",
    )

    output = _ok(
        _relaygate(
            "keys", "create", "--tenant", "acme", "--name", "wp", cwd=tmp_path, data_dir=data
        )
    )
    assert str((data / "relaygate.db").resolve()) in output  # says where it wrote
    key_id, key = _created_key(output)
    assert key.startswith("rg_live_")
    _eventually(gateway_dir, key, 200)

    table = _ok(_relaygate("keys", "list", "--tenant", "acme", cwd=tmp_path, data_dir=data))
    row = next(line for line in table.splitlines() if line.startswith(key_id))
    assert f"rg_live_{key_id}_" in row and "acme" in row and "production" in row and "wp" in row
    assert key not in table
    listed = json.loads(_ok(_relaygate("keys", "list", "--json", cwd=tmp_path, data_dir=data)))
    mine = next(k for k in listed if k["id"] == key_id)
    assert mine["revoked_at"] is None and mine["tenant_id"] == "acme"
    assert key not in json.dumps(listed)

    revoked = _ok(_relaygate("keys", "revoke", key_id, cwd=tmp_path, data_dir=data))
    assert f"key {key_id} (rg_live_{key_id}_, tenant 'acme') revoked" in revoked
    _eventually(gateway_dir, key, 401)
    listed = json.loads(_ok(_relaygate("keys", "list", "--json", cwd=tmp_path, data_dir=data)))
    assert next(k for k in listed if k["id"] == key_id)["revoked_at"] is not None
    _ok(_relaygate("keys", "revoke", key_id, cwd=tmp_path, data_dir=data))  # idempotent
    _refused(
        _relaygate("keys", "revoke", "nosuchkey", cwd=tmp_path, data_dir=data),
        "no key with id 'nosuchkey'",
    )
    assert key not in gateway_dir.logs()


def test_postgresql_databases_that_do_not_exist_or_are_empty_are_named_without_password(
    tmp_path: Path,
) -> None:
    with postgres_database() as url:
        with_password = url.replace("postgres@", "postgres:hunter2-secret@")
        missing = with_password.rsplit("/", 1)[0] + "/relaygate_no_such_database"
        stderr = _refused(
            _relaygate("keys", "list", cwd=tmp_path, RELAYGATE_DATABASE_URL=missing),
            "cannot open the database postgresql+asyncpg://postgres:***@",
            "relaygate_no_such_database",
        )
        assert "hunter2" not in stderr
        _refused(
            _relaygate("tenants", "create", "acme", cwd=tmp_path, RELAYGATE_DATABASE_URL=url),
            "holds no Relaygate schema yet",
        )
