"""The README's quick start from an empty checkout: `make run` installs, starts and answers."""

from __future__ import annotations

import os
import shutil
import signal
import subprocess
import time
from pathlib import Path

import httpx
import openai
import pytest

from tests.support.servers import free_port

ROOT = Path(__file__).resolve().parents[1]
KEY = "fresh-clone-check-key-0123456789abcdef"


@pytest.mark.slow
def test_make_run_from_a_fresh_clone(tmp_path: Path) -> None:
    if not (ROOT / ".git").exists() or shutil.which("git") is None:
        pytest.skip("SKIPPED LOUDLY: not a git checkout, cannot clone the committed tree")
    clone = tmp_path / "clone"
    subprocess.run(["git", "clone", "--quiet", str(ROOT), str(clone)], check=True)
    port = free_port()
    env = {k: v for k, v in os.environ.items() if not k.startswith(("RELAYGATE_", "VIRTUAL_ENV"))}
    env.update(
        {
            "RELAYGATE_PORT": str(port),
            "RELAYGATE_DEFAULT_KEY": KEY,
            "RELAYGATE_ADMIN_KEY": KEY + "-admin",
            "PYTHONUNBUFFERED": "1",
        }
    )
    log = (tmp_path / "run.log").open("wb")
    process = subprocess.Popen(
        ["make", "run"],
        cwd=clone,
        env=env,
        stdout=log,
        stderr=subprocess.STDOUT,
        start_new_session=True,
    )
    base = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 600
        while time.monotonic() < deadline:
            assert process.poll() is None, (tmp_path / "run.log").read_text()
            try:
                if httpx.get(base + "/readyz", timeout=1).status_code == 200:
                    break
            except httpx.TransportError:
                time.sleep(0.5)
        output = (tmp_path / "run.log").read_text()
        assert f"Relaygate is starting on {base}" in output
        assert "curl " in output and "from openai import OpenAI" in output
        sdk = openai.OpenAI(base_url=base + "/v1", api_key=KEY, max_retries=0)
        reply = sdk.chat.completions.create(
            model="auto", messages=[{"role": "user", "content": "hi"}]
        )
        assert reply.choices[0].message.content
        assert (clone / "data" / "relaygate.db").exists()  # the embedded SQLite default
    finally:
        os.killpg(process.pid, signal.SIGTERM)
        process.wait(30)
