"""Start a real gateway process (`relaygate serve`) for end-to-end tests."""

from __future__ import annotations

import os
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import psutil
import yaml

from tests.support.servers import free_port

TENANT_KEY = "test-tenant-key-for-the-suite-0123456789"
ADMIN_KEY = "test-admin-key-for-the-suite-0123456789ab"
# The operator's vault signing root (RELAYGATE_ADMIN_SIGNING_SECRET on the gateway).
ADMIN_SIGNING_SECRET = "test-operator-vault-signing-root-0123456789"


@dataclass
class RunningGateway:
    """A gateway process and what a test needs to talk to it."""

    process: subprocess.Popen[bytes]
    base_url: str
    key: str
    admin_key: str
    data_dir: Path
    log_path: Path
    # With `start_gateway(split_stderr=True)`: stderr (the log records) apart from stdout.
    stderr_path: Path | None = None

    @property
    def v1(self) -> str:
        """The OpenAI base URL."""
        return self.base_url + "/v1"

    def logs(self) -> str:
        """Everything the process printed so far."""
        return self.log_path.read_text(errors="replace")

    def rss(self) -> int:
        """Resident memory of the gateway: the supervisor and its workers."""
        root = psutil.Process(self.process.pid)
        return sum(p.memory_info().rss for p in [root, *root.children(recursive=True)])

    def stop(self) -> int:
        """SIGTERM, wait for the graceful shutdown; returns the exit code."""
        self.process.terminate()
        try:
            return self.process.wait(30)
        except subprocess.TimeoutExpired:
            self.process.kill()
            return self.process.wait(10)


def start_gateway(
    tmp: Path,
    config: dict[str, Any] | None,
    env: dict[str, str] | None = None,
    key: str = TENANT_KEY,
    extra_args: list[str] | None = None,
    split_stderr: bool = False,
) -> RunningGateway:
    """Write `config` (None = embedded default), start `relaygate serve`, wait until ready.

    Output goes to `gateway.log`; with `split_stderr`, stderr (where the log records go) to
    `gateway.stderr.log` instead."""
    tmp.mkdir(parents=True, exist_ok=True)
    port = free_port()
    args = [sys.executable, "-m", "relaygate", "serve", "--port", str(port), *(extra_args or [])]
    if config is not None:
        config_path = tmp / "relaygate.yaml"
        config_path.write_text(yaml.safe_dump(config))
        args += ["--config", str(config_path)]
    log_path = tmp / "gateway.log"
    full_env = {k: v for k, v in os.environ.items() if not k.startswith("RELAYGATE_")}
    full_env.update(
        {
            "RELAYGATE_DATA_DIR": str(tmp / "data"),
            "RELAYGATE_DEFAULT_KEY": key,
            "RELAYGATE_ADMIN_KEY": ADMIN_KEY,
            "RELAYGATE_ADMIN_SIGNING_SECRET": ADMIN_SIGNING_SECRET,
            "PYTHONUNBUFFERED": "1",
        }
    )
    full_env.update(env or {})
    log = log_path.open("wb")
    stderr_path = tmp / "gateway.stderr.log" if split_stderr else None
    stderr = stderr_path.open("wb") if stderr_path is not None else subprocess.STDOUT
    process = subprocess.Popen(args, stdout=log, stderr=stderr, env=full_env)
    base = f"http://127.0.0.1:{port}"
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise RuntimeError(f"gateway exited early:\n{log_path.read_text()}")
        try:
            if httpx.get(base + "/readyz", timeout=1).status_code == 200:
                return RunningGateway(
                    process, base, key, ADMIN_KEY, tmp / "data", log_path, stderr_path
                )
        except httpx.TransportError:
            pass
        time.sleep(0.1)
    process.kill()
    raise RuntimeError(f"gateway did not become ready:\n{log_path.read_text()}")


def suite_config(
    openai_base: str, extra_providers: list[dict[str, Any]] | None = None, heartbeat: float = 0.25
) -> dict[str, Any]:
    """The configuration most end-to-end tests share."""
    fake_models = [
        {
            "name": name,
            "context_window": 128000,
            "max_output_tokens": 4096,
            "input_price": 1.0,
            "output_price": 2.0,
            "cached_input_price": 0.5,
            "capabilities": ["chat", "streaming", "tools", "json", "vision"],
        }
        for name in (
            "gpt-echo",
            "gpt-no-usage",
            "gpt-slow",
            "gpt-huge",
            "gpt-fail-mid",
            "gpt-cut",
            "gpt-500",
            "gpt-429",
            "gpt-401",
            "gpt-400",
            "gpt-422",
            "gpt-redirect",
        )
    ]
    fake_models.append({"name": "text-embed", "capabilities": ["embeddings"], "input_price": 0.1})
    return {
        "server": {"heartbeat_interval_s": heartbeat, "max_body_bytes": 65536, "body_timeout_s": 2},
        "providers": [
            {
                "name": "simulator",
                "type": "simulator",
                "simulator": {"ttft_ms": 0, "tokens_per_s": 5000, "max_reply_tokens": 24},
                "models": [
                    {
                        "name": "sim-small",
                        "input_price": 0.15,
                        "output_price": 0.6,
                        "capabilities": ["chat", "streaming", "tools", "json"],
                    },
                    {
                        "name": "sim-embed",
                        "capabilities": ["embeddings"],
                        "embedding_dimensions": 64,
                    },
                ],
            },
            {
                "name": "fakeoai",
                "type": "openai_compatible",
                "base_url": openai_base + "/v1",
                "api_key": "env:FAKE_OPENAI_KEY",
                "timeouts": {"connect": 2, "first_byte": 10, "between_chunks": 10, "total": 60},
                "models": fake_models,
            },
            {
                "name": "fakeazure",
                "type": "azure",
                "base_url": openai_base,
                "api_version": "2024-10-21",
                "api_key": "env:FAKE_OPENAI_KEY",
                "models": [
                    {
                        "name": "azure-echo",
                        "upstream": "gpt-echo",
                        "capabilities": ["chat", "streaming", "tools"],
                    },
                    {
                        "name": "azure-embed",
                        "upstream": "text-embed",
                        "capabilities": ["embeddings"],
                    },
                ],
            },
            *(extra_providers or []),
        ],
        "routes": [
            {"name": "fast", "targets": ["simulator/sim-small"]},
            {"name": "failover", "targets": ["fakeoai/gpt-500", "fakeoai/gpt-echo"]},
            {"name": "no-failover", "targets": ["fakeoai/gpt-400", "fakeoai/gpt-echo"]},
        ],
    }
