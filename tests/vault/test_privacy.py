"""End-user identifiers become keyed pseudonyms with `privacy.hash_pii`."""

from __future__ import annotations

import sqlite3
import time
from pathlib import Path

import openai

from relaygate.privacy.pseudonym import ENV_VAR, Pseudonymizer
from tests.support.gateway import start_gateway

EMAIL = "alice.pseudonym-test@example.com"


def test_pseudonyms_are_stable_keyed_and_idempotent(tmp_path: Path) -> None:
    one = Pseudonymizer.open({}, tmp_path)
    again = Pseudonymizer.open({}, tmp_path)  # a restart reads the same salt file
    other = Pseudonymizer.open({ENV_VAR: "another-deployment-salt-0123"}, tmp_path)
    assert one(EMAIL) == again(EMAIL) != other(EMAIL)
    assert one(EMAIL).startswith("u_") and EMAIL not in one(EMAIL)
    assert one(one(EMAIL)) == one(EMAIL)
    assert (tmp_path / "pii.salt").stat().st_mode & 0o777 == 0o600


def test_usage_records_keep_only_the_pseudonym(tmp_path: Path) -> None:
    config = {
        "privacy": {"hash_pii": True},
        "providers": [{"name": "simulator", "type": "simulator", "models": [{"name": "sim"}]}],
    }
    gw = start_gateway(tmp_path, config)
    try:
        client = openai.OpenAI(base_url=gw.v1, api_key=gw.key, max_retries=0)
        for _ in range(2):
            client.chat.completions.create(
                model="sim", messages=[{"role": "user", "content": "hi"}], user=EMAIL
            )
        rows: list[tuple[str]] = []
        deadline = time.monotonic() + 10
        while len(rows) < 2 and time.monotonic() < deadline:
            time.sleep(0.2)
            with sqlite3.connect(gw.data_dir / "relaygate.db") as db:
                rows = db.execute("SELECT end_user FROM usage_records").fetchall()
        expected = Pseudonymizer.open({}, gw.data_dir)(EMAIL)
        assert [r[0] for r in rows] == [expected, expected]
    finally:
        gw.stop()
    for path in gw.data_dir.glob("relaygate.db*"):
        assert EMAIL.encode() not in path.read_bytes()
    assert EMAIL not in gw.logs()
