"""Keys chosen by the operator (issue 29, item 6).

A RELAYGATE_DEFAULT_KEY or RELAYGATE_ADMIN_KEY that starts like a generated key but lacks its
separator crashed `serve` with a traceback; with a late separator nearly the whole key became the
listed display prefix, in plain text. Now a usable chosen key of any shape is accepted and listed
by its first four characters, and an unusable one is refused at start with one line, no
traceback and exit status 1. The full key appears in no log, listing or database page.
"""

from __future__ import annotations

import json
import os
import sqlite3
import subprocess
import sys
from pathlib import Path

import httpx
import pytest

from tests.support.gateway import ADMIN_KEY, RunningGateway, start_gateway

NO_SEPARATOR = "rg_test_" + "NoSeparatorAtAll0123456789abcdefghij"
LATE_SEPARATOR = "rg_admin_" + "LateSeparator0123456789abcdef" + "_" + "tail012345"


def _relaygate(*args: str, data_dir: Path, **env: str) -> subprocess.CompletedProcess[str]:
    clean = {k: v for k, v in os.environ.items() if not k.startswith("RELAYGATE_")}
    return subprocess.run(
        [sys.executable, "-m", "relaygate", *args],
        env={**clean, "RELAYGATE_DATA_DIR": str(data_dir), **env},
        capture_output=True,
        text=True,
        timeout=120,
    )


def _listings(gw: RunningGateway, admin_key: str) -> dict[str, str]:
    """Every place a key's prefix is listed: the admin API and both forms of `keys list`."""
    api = httpx.get(
        gw.base_url + "/admin/v1/tenants/default/keys",
        headers={"Authorization": f"Bearer {admin_key}"},
        timeout=10,
    )
    assert api.status_code == 200, api.text
    table = _relaygate("keys", "list", data_dir=gw.data_dir)
    listed = _relaygate("keys", "list", "--json", data_dir=gw.data_dir)
    assert table.returncode == 0 and listed.returncode == 0, table.stderr + listed.stderr
    prefixes = {row["kind"]: row["display_prefix"] for row in json.loads(listed.stdout)}
    return {"api": api.text, "table": table.stdout, "json": listed.stdout, **prefixes}


def test_generated_looking_chosen_keys_are_accepted_and_listed_by_a_short_prefix(
    tmp_path: Path,
) -> None:
    env = {"RELAYGATE_ADMIN_KEY": LATE_SEPARATOR}
    running = start_gateway(tmp_path, None, env=env, key=NO_SEPARATOR)
    try:
        chat = httpx.post(
            running.v1 + "/chat/completions",
            headers={"Authorization": f"Bearer {NO_SEPARATOR}"},
            json={"model": "fast", "messages": [{"role": "user", "content": "hi"}]},
            timeout=30,
        )
        assert chat.status_code == 200, chat.text
        listings = _listings(running, LATE_SEPARATOR)
        assert listings["tenant"] == "rg_t..." and listings["admin"] == "rg_a..."
        for key in (NO_SEPARATOR, LATE_SEPARATOR):
            for text in (listings["api"], listings["table"], listings["json"]):
                assert key not in text and key[:12] not in text
    finally:
        running.stop()
    database = (running.data_dir / "relaygate.db").read_bytes()
    for key in (NO_SEPARATOR, LATE_SEPARATOR):
        assert key not in running.logs()
        assert key.encode() not in database
    assert "Traceback" not in running.logs()

    # A row stored by an older version (most of the key as its prefix) is corrected on start.
    with sqlite3.connect(running.data_dir / "relaygate.db") as db:
        old_prefix = NO_SEPARATOR[:32]
        db.execute("UPDATE api_keys SET display_prefix = ? WHERE kind = 'tenant'", (old_prefix,))
    again = start_gateway(tmp_path, None, env=env, key=NO_SEPARATOR)
    try:
        assert _listings(again, LATE_SEPARATOR)["tenant"] == "rg_t..."
    finally:
        again.stop()


def test_a_chosen_generated_key_is_listed_by_its_type_and_id(tmp_path: Path) -> None:
    from relaygate.auth.keys import generate_key

    key, key_id = generate_key("staging")
    running = start_gateway(tmp_path, None, key=key)
    try:
        listings = _listings(running, ADMIN_KEY)
        assert listings["tenant"] == f"rg_test_{key_id}_"
        assert key not in listings["api"] + listings["table"] + listings["json"]
    finally:
        running.stop()
    assert key not in running.logs()


@pytest.mark.parametrize(
    ("env", "message"),
    [
        (
            {"RELAYGATE_DEFAULT_KEY": "rg_test_tooShort"},
            "error: RELAYGATE_DEFAULT_KEY must be at least 32 characters long (it has 16)",
        ),
        (
            {"RELAYGATE_ADMIN_KEY": "rg_admin_ with spaces 0123456789abcdefghijk"},
            "error: RELAYGATE_ADMIN_KEY may only contain printable ASCII characters",
        ),
        (
            {
                "RELAYGATE_DEFAULT_KEY": "same-key-for-both-0123456789abcdefghijkl",
                "RELAYGATE_ADMIN_KEY": "same-key-for-both-0123456789abcdefghijkl",
            },
            "error: RELAYGATE_DEFAULT_KEY and RELAYGATE_ADMIN_KEY must differ",
        ),
    ],
    ids=["too short", "spaces", "the same for both"],
)
def test_an_unusable_chosen_key_is_refused_at_start_in_one_line(
    tmp_path: Path, env: dict[str, str], message: str
) -> None:
    result = _relaygate("serve", "--port", "1", data_dir=tmp_path / "data", **env)
    assert result.returncode == 1
    assert result.stderr.strip().splitlines() == [result.stderr.strip()]  # one line
    assert result.stderr.startswith(message), result.stderr
    assert "Traceback" not in result.stdout + result.stderr
    for key in env.values():
        assert key not in result.stdout + result.stderr
    assert not (tmp_path / "data" / "relaygate.db").exists()  # refused before anything is written
