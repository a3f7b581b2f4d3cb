"""The README's admin tour and the tenancy walk-through, run as written against one gateway, one
after the other as a newcomer does (issue 31: the walk-through's tenant collided with the
README's, so its first call answered 409). The blocks are the ones marked `<!-- tested: ... -->`;
only the port and the admin key placeholder are filled in."""

from __future__ import annotations

import os
import re
import subprocess
from pathlib import Path

from tests.support.gateway import ADMIN_KEY, start_gateway

ROOT = Path(__file__).resolve().parents[1]
MARKED_BLOCK = re.compile(r"<!-- tested: ([a-z-]+) -->\s*\n```sh\n(.*?)\n```", re.S)
# Every curl prints its status code after the body.
WITH_STATUS = "curl() { command curl -w ' [HTTP %{http_code}]\\n' \"$@\"; }\n"


def block(page: str, name: str) -> str:
    found = dict(MARKED_BLOCK.findall((ROOT / page).read_text()))
    return found[name]


def run(script: str, port: int) -> list[int]:
    script = script.replace("127.0.0.1:8080", f"127.0.0.1:{port}")
    # The reader pastes the admin key where the page says `...`; the test's is in the environment.
    script = re.sub(r"^export ADMIN_KEY=\.\.\..*$", "", script, flags=re.M)
    env = {k: v for k, v in os.environ.items() if not k.startswith("RELAYGATE_")}
    env["ADMIN_KEY"] = ADMIN_KEY
    done = subprocess.run(
        ["bash", "-e", "-c", WITH_STATUS + script],
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert done.returncode == 0, done.stderr
    return [int(code) for code in re.findall(r"\[HTTP (\d{3})\]", done.stdout)]


def test_the_readme_tour_then_the_tenancy_walk_through(tmp_path: Path) -> None:
    gw = start_gateway(tmp_path, None)  # the embedded default, as `make run`
    try:
        port = int(gw.base_url.rsplit(":", 1)[1])
        readme = run(block("README.md", "readme-tenants"), port)
        assert readme == [201, 201, 201, 200], readme
        walk = run(block("docs/tenancy.md", "tenancy-walkthrough"), port)
        # The one call with a placeholder key (`rg_live_...`) is refused; everything else passes.
        assert walk == [201, 201, 201, 201, 401, 200, 200], walk
    finally:
        gw.stop()
