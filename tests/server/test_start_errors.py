"""`serve` that cannot reach its database stops with one line naming it (never its password),
not a traceback."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

from tests.support.servers import free_port


def test_an_unreachable_database_stops_serve_with_one_line(tmp_path: Path) -> None:
    port = free_port()  # nothing listens there
    url = f"postgresql+asyncpg://relaygate:hunter2-secret@127.0.0.1:{port}/relaygate"
    env = {k: v for k, v in os.environ.items() if not k.startswith("RELAYGATE_")}
    result = subprocess.run(
        [sys.executable, "-m", "relaygate", "serve", "--port", str(free_port())],
        env={**env, "RELAYGATE_DATA_DIR": str(tmp_path), "RELAYGATE_DATABASE_URL": url},
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert result.returncode == 1
    assert "Traceback" not in result.stdout + result.stderr
    assert "hunter2" not in result.stdout + result.stderr
    errors = [line for line in result.stderr.splitlines() if line.startswith("error:")]
    where = f"postgresql+asyncpg://relaygate:***@127.0.0.1:{port}/relaygate"
    assert len(errors) == 1, result.stderr
    assert errors[0].startswith(f"error: cannot start (database {where}): "), errors[0]
    assert "Connect call failed" in errors[0] or "refused" in errors[0].lower(), errors[0]
