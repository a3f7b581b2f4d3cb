"""The start banner's examples work as printed (issue 31, friction: the Python example failed
with 401 when the key came from RELAYGATE_DEFAULT_KEY or on a restart).

Each case starts a real gateway, cuts the banner's shell examples out of its output and runs
them with bash: the `curl` one with curl, the Python one with this virtualenv's interpreter and
the OpenAI SDK, exactly as a newcomer pastes them into a second terminal.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from tests.support.gateway import TENANT_KEY, start_gateway

GENERATED = {"RELAYGATE_DEFAULT_KEY": "", "RELAYGATE_ADMIN_KEY": ""}


def _examples(output: str) -> tuple[str, str, str]:
    """The banner's three blocks after "Try it": setting RELAYGATE_KEY, curl, Python."""
    banner = output[output.index("Try it") :]
    banner = banner[: banner.index("\nPY\n") + 4]
    blocks = banner.split("\n\n")
    assert len(blocks) == 3, banner
    setting = blocks[0].split("\n", 1)[1]
    return setting, blocks[1], blocks[2]


def _bash(script: str, **env: str) -> subprocess.CompletedProcess[str]:
    """Run `script` as a newcomer's shell would: no RELAYGATE_* variables unless given."""
    clean = {k: v for k, v in os.environ.items() if not k.startswith("RELAYGATE_")}
    clean["PATH"] = f"{Path(sys.executable).parent}{os.pathsep}{clean.get('PATH', '')}"
    bash = shutil.which("bash")
    assert bash is not None
    return subprocess.run(
        [bash, "-c", "set -e\n" + script],
        env={**clean, **env},
        capture_output=True,
        text=True,
        timeout=60,
    )


def _assert_examples_work(setting: str, curl: str, python: str, **env: str) -> None:
    if shutil.which("curl") is None:
        pytest.fail("curl is needed to run the banner's curl example")
    answer = _bash(f"{setting}\n{curl}", **env)
    assert answer.returncode == 0, answer.stderr
    reply = json.loads(answer.stdout)
    assert reply["choices"][0]["message"]["content"], reply
    printed = _bash(f"{setting}\n{python}", **env)
    assert printed.returncode == 0, printed.stderr
    assert printed.stdout.strip()


def test_banner_examples_work_with_a_generated_key_and_after_a_restart(tmp_path: Path) -> None:
    first = start_gateway(tmp_path, None, env=GENERATED)
    try:
        output = first.logs()
        line = next(x for x in output.splitlines() if "API key (default tenant, shown once)" in x)
        key = line.split(": ", 1)[1].strip()
        setting, curl, python = _examples(output)
        assert setting.strip() == f"export RELAYGATE_KEY={key}"
        _assert_examples_work(setting, curl, python)
    finally:
        first.stop()
    # A restart shows no key (it was shown once); the examples work once RELAYGATE_KEY is set,
    # which is what the banner says.
    second = start_gateway(tmp_path, None, env=GENERATED, key=key)
    try:
        output = second.logs()
        assert key not in output
        setting, curl, python = _examples(output)
        assert "export RELAYGATE_KEY=<a key of the default tenant>" in setting
        assert all(line.lstrip().startswith("#") for line in setting.splitlines())
        _assert_examples_work(setting, curl, python, RELAYGATE_KEY=key)
    finally:
        second.stop()


def test_banner_examples_work_with_a_key_from_relaygate_default_key(tmp_path: Path) -> None:
    running = start_gateway(tmp_path, None)
    try:
        output = running.logs()
        assert TENANT_KEY not in output  # a chosen key is never printed
        setting, curl, python = _examples(output)
        _assert_examples_work(setting, curl, python, RELAYGATE_DEFAULT_KEY=TENANT_KEY)
        # In a shell without the variable, the banner says to paste the value instead.
        assert "paste its value" in setting
        _assert_examples_work(setting.replace("$RELAYGATE_DEFAULT_KEY", TENANT_KEY), curl, python)
    finally:
        running.stop()
