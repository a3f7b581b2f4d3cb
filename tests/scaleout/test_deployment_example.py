"""docs/deployment.md, run as written: the example of examples/deployment/ on a fresh PostgreSQL
database and a Redis prefix of its own, two replicas and one worker started with the commands the
page shows (the shell blocks marked `<!-- tested: ... -->`), then a chat through each replica, a
signed request that needs the shared master key, and a job run by the worker."""

from __future__ import annotations

import os
import re
import shutil
import signal
import stat
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import httpx
import orjson
import pytest

from relaygate.auth.hmac_signing import sign_request
from tests.support.servers import free_port
from tests.support.services import postgres_database

ROOT = Path(__file__).resolve().parents[2]
PAGE = ROOT / "docs" / "deployment.md"
EXAMPLE = ROOT / "examples" / "deployment"
MARKED_BLOCK = re.compile(r"<!-- tested: ([a-z-]+) -->\s*\n\s*```sh\n(.*?)\n\s*```", re.S)


def marked_blocks() -> dict[str, str]:
    """The page's marked shell blocks, by name, de-indented."""
    blocks = {}
    for name, body in MARKED_BLOCK.findall(PAGE.read_text()):
        lines = body.splitlines()
        indent = min(len(line) - len(line.lstrip()) for line in lines if line.strip())
        blocks[name] = "\n".join(line[indent:] for line in lines)
    return blocks


def edit_env_file(path: Path, database_url: str, redis_url: str) -> None:
    """What the page asks the operator to do: point relaygate.env at their database and Redis."""
    text = path.read_text()
    text, n_db = re.subn(
        r"^RELAYGATE_DATABASE_URL=.*$", f"RELAYGATE_DATABASE_URL='{database_url}'", text, flags=re.M
    )
    text, n_redis = re.subn(
        r"^RELAYGATE_REDIS_URL=.*$", f"RELAYGATE_REDIS_URL='{redis_url}'", text, flags=re.M
    )
    assert (n_db, n_redis) == (1, 1), "relaygate.env no longer has the two lines the page names"
    path.write_text(text)


class Deployment:
    """The directory an operator prepared, and the processes started from it."""

    def __init__(self, workdir: Path, prefix: str) -> None:
        self.workdir = workdir
        self.prefix = prefix
        self.blocks = marked_blocks()
        self.processes: list[subprocess.Popen[bytes]] = []

    def env(self, **extra: str) -> dict[str, str]:
        env = {k: v for k, v in os.environ.items() if not k.startswith("RELAYGATE_")}
        # `relaygate` on the PATH, as the page's install step leaves it.
        env["PATH"] = f"{Path(sys.executable).parent}{os.pathsep}{env.get('PATH', '')}"
        # One machine plays several: each process gets its own port and data directory, and the
        # test its own Redis prefix (the page's files are otherwise used unchanged).
        env.update({"RELAYGATE_REDIS_PREFIX": self.prefix, "PYTHONUNBUFFERED": "1", **extra})
        return env

    def run(
        self, block: str, hosts: dict[str, str] | None = None
    ) -> subprocess.CompletedProcess[str]:
        script = self.blocks[block]
        for host, actual in (hosts or {}).items():  # the reader's own host names
            script = script.replace(host, actual)
        return subprocess.run(
            ["bash", "-e", "-c", script],
            cwd=self.workdir,
            env=self.env(),
            capture_output=True,
            text=True,
            timeout=60,
        )

    def start(self, block: str, name: str, **extra: str) -> Path:
        log = self.workdir / f"{name}.log"
        process = subprocess.Popen(
            ["bash", "-e", "-c", self.blocks[block]],
            cwd=self.workdir,
            env=self.env(**extra),
            stdout=log.open("wb"),
            stderr=subprocess.STDOUT,
            start_new_session=True,  # the block's shell and everything it starts
        )
        self.processes.append(process)
        return log

    def replica(self, name: str) -> str:
        port = free_port()
        log = self.start(
            "deployment-serve",
            name,
            RELAYGATE_HOST="127.0.0.1",
            RELAYGATE_PORT=str(port),
            RELAYGATE_DATA_DIR=str(self.workdir / f"data-{name}"),
        )
        base = f"http://127.0.0.1:{port}"
        deadline = time.monotonic() + 90
        while time.monotonic() < deadline:
            assert self.processes[-1].poll() is None, log.read_text()
            try:
                if httpx.get(base + "/readyz", timeout=2).status_code == 200:
                    return base
            except httpx.TransportError:
                pass
            time.sleep(0.2)
        raise AssertionError(f"{name} never became ready:\n{log.read_text()}")

    def worker(self, name: str) -> None:
        log = self.start(
            "deployment-worker", name, RELAYGATE_DATA_DIR=str(self.workdir / f"data-{name}")
        )
        deadline = time.monotonic() + 90
        while b"relaygate worker running jobs from the redis queue" not in log.read_bytes():
            assert self.processes[-1].poll() is None, log.read_text()
            assert time.monotonic() < deadline, log.read_text()
            time.sleep(0.2)

    def secret(self, name: str) -> str:
        shown = subprocess.run(
            ["bash", "-c", f'. ./relaygate-secrets.env; printf %s "${name}"'],
            cwd=self.workdir,
            capture_output=True,
            text=True,
            check=True,
        )
        return shown.stdout

    def stop(self) -> None:
        for process in self.processes:
            if process.poll() is None:
                os.killpg(process.pid, signal.SIGTERM)
        for process in self.processes:
            try:
                process.wait(40)
            except subprocess.TimeoutExpired:
                os.killpg(process.pid, signal.SIGKILL)
                process.wait(10)


def _chat(base: str, key: str) -> httpx.Response:
    return httpx.post(
        base + "/v1/chat/completions",
        headers={"Authorization": f"Bearer {key}"},
        json={"model": "fast", "messages": [{"role": "user", "content": "Hi"}]},
        timeout=10,
    )


def _queue_empty(base: str) -> httpx.Response:
    ready = httpx.get(base + "/readyz", timeout=5)
    return ready if ready.json()["jobs"]["queued"] == 0 else httpx.Response(425)


def _eventually(call: Any, timeout: float = 15) -> httpx.Response:
    """Policy changes reach the other replicas within server.policy_refresh_s."""
    deadline = time.monotonic() + timeout
    while True:
        response: httpx.Response = call()
        if response.status_code == 200 or time.monotonic() > deadline:
            return response
        time.sleep(0.2)


@pytest.mark.slow
def test_the_deployment_page_runs_as_written(tmp_path: Path, redis_url: str, prefix: str) -> None:
    blocks = marked_blocks()
    assert set(blocks) == {
        "deployment-secrets",
        "deployment-check-config",
        "deployment-serve",
        "deployment-worker",
        "deployment-try",
    }
    for name in ("relaygate.yaml", "relaygate.env", "make-secrets.sh"):
        shutil.copy(EXAMPLE / name, tmp_path / name)
    deployment = Deployment(tmp_path, prefix)
    with postgres_database() as database_url:
        edit_env_file(tmp_path / "relaygate.env", database_url, redis_url)
        try:
            made = deployment.run("deployment-secrets")
            assert made.returncode == 0, made.stderr
            secrets_file = tmp_path / "relaygate-secrets.env"
            assert stat.S_IMODE(secrets_file.stat().st_mode) == 0o600
            assert deployment.run("deployment-secrets").returncode != 0  # never overwritten

            checked = deployment.run("deployment-check-config")
            assert checked.returncode == 0, checked.stderr
            assert checked.stdout.strip() in PAGE.read_text()  # the page shows what it prints
            assert checked.stdout.strip() == "relaygate.yaml: ok (1 providers, 2 models, 3 routes)"

            first = deployment.replica("replica-1")  # the first one migrates an empty database
            second = deployment.replica("replica-2")
            deployment.worker("worker-1")
            # The page's own try-out: a tenant and a key made on replica 1, used on replica 2.
            tried = deployment.run(
                "deployment-try",
                {
                    "replica-1.internal:8080": first.removeprefix("http://"),
                    "replica-2.internal:8080": second.removeprefix("http://"),
                },
            )
            assert tried.returncode == 0, tried.stdout + tried.stderr
            printed = tried.stdout.replace(" ", "")  # the answers, one after another
            assert '"object":"chat.completion"' in printed
            assert re.search(r'"id":"job_[^"]+".*"status":"queued"', printed), printed

            admin = {"Authorization": f"Bearer {deployment.secret('RELAYGATE_ADMIN_KEY')}"}
            created = httpx.post(f"{first}/admin/v1/tenants", json={"id": "signed"}, headers=admin)
            assert created.status_code == 201, created.text
            key = httpx.post(
                f"{first}/admin/v1/tenants/signed/keys",
                json={"name": "web", "signing": True},
                headers=admin,
            ).json()
            for base in (first, second):
                answer = _eventually(lambda base=base: _chat(base, key["key"]))
                assert answer.status_code == 200, answer.text
                assert answer.json()["choices"][0]["message"]["content"]

            # The signing secret was sealed by replica 1; replica 2 opens it with the same
            # RELAYGATE_MASTER_KEY from the secrets file.
            path = "/v1/chat/completions"
            body = orjson.dumps({"model": "fast", "messages": [{"role": "user", "content": "x"}]})
            signature = sign_request(key["signing_secret"], "POST", path, body, key_id=key["id"])
            signed = httpx.post(
                second + path,
                content=body,
                headers={"Content-Type": "application/json", **signature},
                timeout=10,
            )
            assert signed.status_code == 200, signed.text

            # Replicas only accept jobs (run_in_gateway: false); the worker runs them.
            job = httpx.post(
                f"{second}/v1/jobs",
                headers={"Authorization": f"Bearer {key['key']}"},
                json={
                    "url": "/v1/chat/completions",
                    "body": {"model": "fast", "messages": [{"role": "user", "content": "job"}]},
                },
                timeout=10,
            )
            assert job.status_code == 202, job.text
            deadline = time.monotonic() + 60
            while True:
                status = httpx.get(
                    f"{first}/v1/jobs/{job.json()['id']}",
                    headers={"Authorization": f"Bearer {key['key']}"},
                ).json()
                if status["status"] not in {"queued", "running"}:
                    break
                assert time.monotonic() < deadline, status
                time.sleep(0.2)
            assert status["status"] == "succeeded", status

            # The try-out's job ran too: nothing is left waiting.
            assert _eventually(lambda: _queue_empty(first)).status_code == 200
            for base in (first, second):
                ready = httpx.get(base + "/readyz").json()
                assert ready["status"] == "ready", ready
                assert ready["jobs"]["state"] == "ok" and ready["jobs"]["workers"] == 1
                assert ready["jobs"]["runs_here"] is False
        finally:
            deployment.stop()
    logs = "".join(path.read_text() for path in tmp_path.glob("*.log"))
    assert "Traceback" not in logs
    assert deployment.secret("RELAYGATE_MASTER_KEY") not in logs  # no secret in any log
