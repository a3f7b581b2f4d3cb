"""`relaygate serve` runs its workers under a supervisor: a worker that asks is replaced while
requests keep being answered, and killing the supervisor takes its workers with it."""

from __future__ import annotations

import signal
import threading
import time
from pathlib import Path

import httpx
import openai
import psutil

from tests.support.gateway import RunningGateway, start_gateway


def _workers(gateway: RunningGateway) -> list[psutil.Process]:
    supervisor = psutil.Process(gateway.process.pid)
    return [p for p in supervisor.children() if "spawn_main" in " ".join(p.cmdline())]


def _ask(gateway: RunningGateway) -> None:
    chat = openai.OpenAI(base_url=gateway.v1, api_key=gateway.key, max_retries=0)
    reply = chat.chat.completions.create(model="fast", messages=[{"role": "user", "content": "hi"}])
    assert reply.choices[0].message.content


def test_a_worker_that_asks_is_replaced_without_a_failed_request(tmp_path: Path) -> None:
    gateway = start_gateway(tmp_path, None)
    try:
        supervisor = psutil.Process(gateway.process.pid)
        assert "relaygate.server.supervisor" in " ".join(supervisor.cmdline())
        # The long-lived parent has loaded nothing of the gateway.
        assert supervisor.memory_info().rss < 60 * 2**20
        (old,) = _workers(gateway)
        flags = Path(old.environ()["RELAYGATE_RECYCLE_DIR"])
        _ask(gateway)

        statuses: list[int | str] = []
        stop = threading.Event()

        def traffic() -> None:  # a new connection for every request
            while not stop.is_set():
                try:
                    response = httpx.get(
                        gateway.v1 + "/models",
                        headers={"Authorization": f"Bearer {gateway.key}"},
                        timeout=10,
                    )
                    statuses.append(response.status_code)
                except httpx.TransportError as exc:
                    statuses.append(type(exc).__name__)
                time.sleep(0.02)

        thread = threading.Thread(target=traffic)
        thread.start()
        try:
            time.sleep(0.5)
            (flags / str(old.pid)).touch()  # what server/recycle.py does when memory stayed grown
            supervisor.send_signal(signal.SIGUSR1)
            deadline = time.monotonic() + 60
            while time.monotonic() < deadline and old.is_running() and old.status() != "zombie":
                time.sleep(0.2)
            time.sleep(0.5)
        finally:
            stop.set()
            thread.join()
        assert not old.is_running() or old.status() == "zombie"
        (new,) = _workers(gateway)
        assert new.pid != old.pid
        assert not (flags / str(old.pid)).exists()
        assert len(statuses) > 20
        assert set(statuses) == {200}, statuses
        _ask(gateway)  # the replacement serves
        assert "replaced by" in gateway.logs()
    finally:
        assert gateway.stop() == 0
    assert not flags.exists()  # the supervisor removes its directory


def test_killing_the_supervisor_kills_its_workers(tmp_path: Path) -> None:
    gateway = start_gateway(tmp_path, None)
    (worker,) = _workers(gateway)
    gateway.process.send_signal(signal.SIGKILL)
    gateway.process.wait(10)
    worker.wait(10)  # raises psutil.TimeoutExpired if it outlived the supervisor
