"""Starting and stopping the processes under test: the stub, Relaygate and LiteLLM's proxy."""

from __future__ import annotations

import contextlib
import os
import secrets
import signal
import socket
import string
import subprocess
import sys
import threading
import time
import urllib.error
import urllib.request
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path

import psutil

LITELLM_VERSION = "1.81.13"
RELAYGATE_KEY_ALPHABET = string.ascii_letters + string.digits


def free_port() -> int:
    """A TCP port that was free a moment ago on 127.0.0.1."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def random_key(length: int = 40) -> str:
    """An operator-chosen key of `length` letters and digits."""
    return "".join(secrets.choice(RELAYGATE_KEY_ALPHABET) for _ in range(length))


@dataclass
class Service:
    """A process we started, with its log file."""

    name: str
    popen: subprocess.Popen[bytes]
    log: Path

    @property
    def pid(self) -> int:
        return self.popen.pid

    def processes(self) -> list[psutil.Process]:
        """The process and its descendants (LiteLLM may fork)."""
        try:
            root = psutil.Process(self.pid)
            return [root, *root.children(recursive=True)]
        except psutil.NoSuchProcess:
            return []

    def cpu_seconds(self) -> float:
        """User + system CPU seconds of the process tree so far."""
        total = 0.0
        for proc in self.processes():
            with contextlib.suppress(psutil.NoSuchProcess):
                times = proc.cpu_times()
                total += times.user + times.system
        return total

    def rss_bytes(self) -> int:
        """Resident set size of the process tree."""
        total = 0
        for proc in self.processes():
            with contextlib.suppress(psutil.NoSuchProcess):
                total += proc.memory_info().rss
        return total

    def stop(self) -> None:
        """SIGTERM the process group we created, then SIGKILL it if it lingers."""
        if self.popen.poll() is not None:
            return
        with contextlib.suppress(ProcessLookupError):
            os.killpg(self.popen.pid, signal.SIGTERM)
        try:
            self.popen.wait(timeout=10)
        except subprocess.TimeoutExpired:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(self.popen.pid, signal.SIGKILL)
            self.popen.wait(timeout=5)

    def log_tail(self, lines: int = 20) -> str:
        try:
            return "\n".join(self.log.read_text(errors="replace").splitlines()[-lines:])
        except OSError:
            return ""


@dataclass
class RssSampler:
    """Samples a service's RSS in a thread; `peak` is the largest value seen."""

    service: Service
    interval: float = 0.2
    peak: int = 0
    _stop: threading.Event = field(default_factory=threading.Event)
    _thread: threading.Thread | None = None

    def __enter__(self) -> RssSampler:
        self._thread = threading.Thread(target=self._run, daemon=True)
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join()

    def _run(self) -> None:
        while not self._stop.is_set():
            self.peak = max(self.peak, self.service.rss_bytes())
            self._stop.wait(self.interval)


def start(name: str, argv: list[str], env: dict[str, str], workdir: Path) -> Service:
    """Start `argv` in its own process group, logging to `workdir/<name>.log`."""
    log = workdir / f"{name}.log"
    with log.open("wb") as out:
        popen = subprocess.Popen(
            argv,
            stdout=out,
            stderr=subprocess.STDOUT,
            env=env,
            cwd=workdir,
            start_new_session=True,
        )
    return Service(name=name, popen=popen, log=log)


def wait_ready(service: Service, url: str, timeout: float) -> None:
    """Poll `url` until it answers 200; raise with the log tail on timeout or early exit."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if service.popen.poll() is not None:
            raise RuntimeError(f"{service.name} exited early:\n{service.log_tail()}")
        try:
            with urllib.request.urlopen(url, timeout=2) as response:
                if response.status == 200:
                    return
        except (urllib.error.URLError, OSError):
            pass
        time.sleep(0.2)
    raise RuntimeError(f"{service.name} not ready after {timeout:.0f} s:\n{service.log_tail()}")


def bench_env() -> dict[str, str]:
    """This environment, with the repository on the path (`python -m bench.<tool>` anywhere)."""
    env = dict(os.environ)
    env["PYTHONPATH"] = str(Path(__file__).resolve().parent.parent)
    return env


# The paced stub used for time-to-first-token and chunk timing (bench.run, bench.ab --ttft).
PACED_DELAY_MS = 10.0
PACED_CHUNKS = 10
PACED_INTERVAL_MS = 5.0


def start_paced_stub(name: str, workdir: Path) -> tuple[Service, int]:
    """The paced stub: first chunk after PACED_DELAY_MS, then one every PACED_INTERVAL_MS."""
    return start_stub(
        name,
        workdir,
        delay_ms=PACED_DELAY_MS,
        chunks=PACED_CHUNKS,
        interval_ms=PACED_INTERVAL_MS,
    )


def start_stub(
    name: str, workdir: Path, *, delay_ms: float, chunks: int, interval_ms: float
) -> tuple[Service, int]:
    """Start one upstream stub; returns it and its port."""
    port = free_port()
    argv = [
        sys.executable,
        "-m",
        "bench.stub",
        "--port",
        str(port),
        "--delay-ms",
        str(delay_ms),
        "--stream-chunks",
        str(chunks),
        "--chunk-interval-ms",
        str(interval_ms),
    ]
    service = start(name, argv, bench_env(), workdir)
    wait_ready(service, f"http://127.0.0.1:{port}/health", 15)
    return service, port


# `server_yaml` for tools that signal or attach to the serving process (bench.timeline,
# bench.profile): one process serves, without the supervisor of decision 0019.
SINGLE_PROCESS = "  recycle: {enabled: false}\n"


def start_relaygate(
    workdir: Path,
    fast_port: int,
    paced_port: int,
    *,
    max_connections: int = 256,
    server_yaml: str = "",
    extra_yaml: str = "",
    extra_env: Mapping[str, str] | None = None,
) -> tuple[Service, int, str]:
    """Start Relaygate (one worker, default features) in front of the two stubs;
    `server_yaml` adds lines to its `server:` section, `extra_yaml` whole sections, `extra_env`
    variables to its environment."""
    return start_relaygate_with(
        workdir,
        f"""server:
  workers: 1
{server_yaml}providers:
  - name: stub
    type: openai_compatible
    base_url: http://127.0.0.1:{fast_port}/v1
    api_key: env:STUB_KEY
    max_connections: {max_connections}
    models: [{{name: fake-gpt}}]
  - name: stubpaced
    type: openai_compatible
    base_url: http://127.0.0.1:{paced_port}/v1
    api_key: env:STUB_KEY
    max_connections: {max_connections}
    models: [{{name: fake-gpt-paced}}]
routes:
  - {{name: fake-gpt, targets: [stub/fake-gpt]}}
  - {{name: fake-gpt-paced, targets: [stubpaced/fake-gpt-paced]}}
{extra_yaml}""",
        extra_env,
    )


def start_relaygate_with(
    workdir: Path, config_yaml: str, extra_env: Mapping[str, str] | None = None
) -> tuple[Service, int, str]:
    """Start Relaygate with the configuration `config_yaml` (providers' keys as `env:STUB_KEY`);
    returns it, its port and the default tenant's key."""
    port = free_port()
    data_dir = workdir / "relaygate-data"
    data_dir.mkdir(exist_ok=True)
    config = workdir / "relaygate.yaml"
    config.write_text(config_yaml)
    key = random_key()
    env = dict(os.environ)
    env.update(
        RELAYGATE_DATA_DIR=str(data_dir),
        RELAYGATE_DEFAULT_KEY=key,
        RELAYGATE_ADMIN_KEY=random_key(),
        STUB_KEY="stub-key",
    )
    env.update(extra_env or {})
    relaygate = Path(sys.executable).parent / "relaygate"
    argv = [str(relaygate), "serve", "--config", str(config), "--port", str(port)]
    service = start("relaygate", argv, env, workdir)
    wait_ready(service, f"http://127.0.0.1:{port}/readyz", 60)
    return service, port, key


def start_worker(workdir: Path, name: str) -> Service:
    """A `relaygate worker` sharing the configuration and data of `start_relaygate`'s gateway."""
    env = dict(os.environ)
    env.update(RELAYGATE_DATA_DIR=str(workdir / "relaygate-data"), STUB_KEY="stub-key")
    relaygate = Path(sys.executable).parent / "relaygate"
    argv = [str(relaygate), "worker", "--config", str(workdir / "relaygate.yaml")]
    service = start(name, argv, env, workdir)
    deadline = time.monotonic() + 60
    while b"relaygate worker running" not in service.log.read_bytes():
        if service.popen.poll() is not None or time.monotonic() > deadline:
            raise RuntimeError(f"{name} did not start:\n{service.log_tail()}")
        time.sleep(0.1)
    return service


def litellm_venv(cache_dir: Path) -> Path:
    return cache_dir / "litellm-venv"


def ensure_litellm(cache_dir: Path) -> Path:
    """Install `litellm[proxy]==LITELLM_VERSION` into its own venv; returns the venv path."""
    venv = litellm_venv(cache_dir)
    python = venv / "bin" / "python"
    check = [str(python), "-c", "import importlib.metadata as m; print(m.version('litellm'))"]
    if python.exists():
        found = subprocess.run(check, capture_output=True, text=True, check=False)
        installed = found.returncode == 0 and found.stdout.strip() == LITELLM_VERSION
        if installed and (venv / "bin" / "litellm").exists():
            return venv
    cache_dir.mkdir(parents=True, exist_ok=True)
    print(f"installing litellm[proxy]=={LITELLM_VERSION} into {venv} (once) ...", flush=True)
    subprocess.run([sys.executable, "-m", "venv", str(venv)], check=True)
    subprocess.run(
        [
            str(python),
            "-m",
            "pip",
            "install",
            "-q",
            "--disable-pip-version-check",
            f"litellm[proxy]=={LITELLM_VERSION}",
        ],
        check=True,
        timeout=1200,
    )
    return venv


def start_litellm(
    venv: Path, workdir: Path, fast_port: int, paced_port: int
) -> tuple[Service, int, str]:
    """Start LiteLLM's proxy (one worker, no database) in front of the two stubs."""
    port = free_port()
    config = workdir / "litellm.yaml"
    config.write_text(
        f"""model_list:
  - model_name: fake-gpt
    litellm_params:
      model: openai/fake-gpt
      api_base: http://127.0.0.1:{fast_port}/v1
      api_key: fake
  - model_name: fake-gpt-paced
    litellm_params:
      model: openai/fake-gpt-paced
      api_base: http://127.0.0.1:{paced_port}/v1
      api_key: fake
"""
    )
    key = "sk-" + random_key(32)
    env = {k: v for k, v in os.environ.items() if k != "DATABASE_URL"}
    env.update(
        LITELLM_MASTER_KEY=key,
        LITELLM_LOCAL_MODEL_COST_MAP="True",
        LITELLM_LOG="ERROR",
        VIRTUAL_ENV=str(venv),
        PATH=f"{venv / 'bin'}{os.pathsep}{env.get('PATH', '')}",
    )
    argv = [
        str(venv / "bin" / "litellm"),
        "--config",
        str(config),
        "--host",
        "127.0.0.1",
        "--port",
        str(port),
        "--num_workers",
        "1",
    ]
    service = start("litellm", argv, env, workdir)
    wait_ready(service, f"http://127.0.0.1:{port}/health/liveliness", 120)
    return service, port, key
