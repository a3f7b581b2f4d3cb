"""The process that stays for the life of `relaygate serve`: it holds the listening socket, keeps
the workers alive, and replaces a worker that asks for it without refusing a connection.

`serve` bootstraps (database, keys), prints its banner and then turns itself into this module
(exec, same pid), so the long-lived parent has imported uvicorn and nothing of the gateway:
about 25 MiB instead of the 110 MiB of a process that has loaded it. Workers are uvicorn's
(`Multiprocess`: spawned, health-checked, restarted if they die). A worker that wants to be
replaced (server/recycle.py) leaves a flag file named after its pid in `RELAYGATE_RECYCLE_DIR`
and sends SIGUSR1; the replacement is started on the same socket, and only once it serves is the
old worker sent SIGTERM, which lets it finish what it has in flight (up to 30 s).

    python -m relaygate.server.supervisor --host H --port P --workers N --log-level info \
        --log-format json
"""

from __future__ import annotations

import argparse
import ctypes
import logging
import os
import shutil
import signal
import socket
import sys
import tempfile
from pathlib import Path
from typing import Any

import uvicorn
from uvicorn.supervisors.multiprocess import Multiprocess, Process

from relaygate.observability.redaction import Redactor
from relaygate.observability.setup import install
from relaygate.server.protocol import GracefulHttpToolsProtocol

RECYCLE_DIR_ENV = "RELAYGATE_RECYCLE_DIR"
APP_FACTORY = "relaygate.app:create_app_from_env"
PR_SET_PDEATHSIG = 1  # prctl(2)
# How long a worker may take to start (imports, database, keys) and to answer a health check;
# uvicorn's default of 5 s is too short for a replacement starting on a busy machine.
WORKER_START_S = 30

log = logging.getLogger("uvicorn.error")


def die_with_supervisor() -> None:
    """In a worker: be killed when the supervisor dies, whatever kills it (Linux).

    A worker that outlived it would keep the listening socket, so a restarted gateway could not
    bind; dying with it is what a single-process gateway would do, and the journal and job
    leases recover from that."""
    if sys.platform != "linux":
        return
    libc = ctypes.CDLL(None, use_errno=True)
    libc.prctl(PR_SET_PDEATHSIG, signal.SIGKILL, 0, 0, 0)
    if os.getppid() == 1:  # the supervisor was gone before we asked
        os.kill(os.getpid(), signal.SIGKILL)


def uvicorn_options(host: str, port: int, log_level: str) -> dict[str, Any]:
    """The uvicorn settings of every gateway worker, supervised or not."""
    return {
        "host": host,
        "port": port,
        "log_level": log_level,
        "access_log": False,  # the gateway writes its own (observability/access.py)
        "log_config": None,  # no handlers of uvicorn's: its records go through ours
        "loop": "uvloop",
        "http": GracefulHttpToolsProtocol,
        # The gateway speaks no WebSocket: an Upgrade request is answered as plain HTTP (in
        # the JSON envelope where it is an error) instead of by uvicorn's empty 403.
        "ws": "none",
        "timeout_graceful_shutdown": 30,
        "proxy_headers": False,
    }


class Supervisor(Multiprocess):
    """uvicorn's worker supervisor, plus replacing the workers that flagged themselves."""

    def __init__(self, config: uvicorn.Config, sockets: list[socket.socket], flags: Path) -> None:
        super().__init__(config, sockets)
        self.flags = flags
        self.retiring: list[Process] = []  # replaced, finishing what they have in flight

    def handle_usr1(self) -> None:
        """Called by uvicorn's signal loop: replace every worker that left a flag."""
        for index, process in enumerate(list(self.processes)):
            flag = self.flags / str(process.pid)
            if flag.exists():
                flag.unlink()
                self.replace(index)

    def replace(self, index: int) -> bool:
        """Start a new worker; once it serves, retire the one at `index`."""
        old = self.processes[index]
        new = Process(self.config, self.sockets)
        new.start()
        if not new.wait_until_ready(self.config.timeout_worker_healthcheck, self.should_exit):
            new.kill()
            new.join()
            log.error("the replacement worker was not ready in time; keeping [%s]", old.pid)
            return False
        self.processes[index] = new
        old.terminate()
        self.retiring.append(old)
        log.info("worker [%s] replaced by [%s]", old.pid, new.pid)
        return True

    def keep_subprocess_alive(self) -> None:
        super().keep_subprocess_alive()
        for process in [p for p in self.retiring if not p.process.is_alive()]:
            process.join()
            self.retiring.remove(process)

    def join_all(self) -> None:
        super().join_all()
        for process in self.retiring:
            process.join()


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--host", required=True)
    parser.add_argument("--port", type=int, required=True)
    parser.add_argument("--workers", type=int, default=1)
    parser.add_argument("--log-level", default="info")
    parser.add_argument("--log-format", choices=("json", "text"), default="json")
    args = parser.parse_args(argv)
    # The supervisor only logs about its workers: secrets redacted, no personal data to hash.
    install(args.log_format, args.log_level, Redactor())
    config = uvicorn.Config(
        APP_FACTORY,
        factory=True,
        workers=args.workers,
        timeout_worker_healthcheck=WORKER_START_S,
        **uvicorn_options(args.host, args.port, args.log_level),
    )
    flags = Path(tempfile.mkdtemp(prefix="relaygate-workers-"))
    os.environ[RECYCLE_DIR_ENV] = str(flags)  # inherited by the workers
    try:
        sock = config.bind_socket()
        Supervisor(config, [sock], flags).run()
    finally:
        shutil.rmtree(flags, ignore_errors=True)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
