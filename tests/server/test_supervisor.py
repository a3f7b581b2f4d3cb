"""`relaygate serve` runs its workers under a supervisor: a worker that asks is replaced while
requests keep being answered, and killing the supervisor takes its workers with it."""

from __future__ import annotations

import asyncio
import signal
import threading
import time
from pathlib import Path

import httpx
import openai
import psutil

from tests.fakes.openai import API_KEY, FakeOpenAI
from tests.support.gateway import RunningGateway, start_gateway, suite_config


def _workers(gateway: RunningGateway) -> list[psutil.Process]:
    supervisor = psutil.Process(gateway.process.pid)
    return [p for p in supervisor.children() if "spawn_main" in " ".join(p.cmdline())]


SLOW_SIM = {  # answers after a second: requests held open together
    "name": "slowsim",
    "type": "simulator",
    "simulator": {"ttft_ms": 1000, "tokens_per_s": 1000, "max_reply_tokens": 8},
    "models": [{"name": "slow", "capabilities": ["chat"]}],
}


def _ask(gateway: RunningGateway, model: str = "fast") -> None:
    chat = openai.OpenAI(base_url=gateway.v1, api_key=gateway.key, max_retries=0)
    reply = chat.chat.completions.create(model=model, messages=[{"role": "user", "content": "hi"}])
    assert reply.choices[0].message.content


async def _burst(gateway: RunningGateway, count: int) -> list[int]:
    body = {
        "model": "slowsim/slow",
        "messages": [{"role": "user", "content": "hold on"}],
    }
    headers = {"Authorization": f"Bearer {gateway.key}"}
    limits = httpx.Limits(max_connections=count)
    async with httpx.AsyncClient(limits=limits, timeout=30) as client:
        answers = await asyncio.gather(
            *(
                client.post(gateway.v1 + "/chat/completions", json=body, headers=headers)
                for _ in range(count)
            )
        )
    return [answer.status_code for answer in answers]


def _wait_gone(process: psutil.Process, timeout: float = 60) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline and process.is_running() and process.status() != "zombie":
        time.sleep(0.2)
    assert not process.is_running() or process.status() == "zombie", "the worker is still serving"


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
            _wait_gone(old)
            time.sleep(0.5)
        finally:
            stop.set()
            thread.join()
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


def test_a_worker_whose_memory_grew_asks_for_its_own_replacement(
    tmp_path: Path, fake_openai: tuple[FakeOpenAI, str]
) -> None:
    # The real path: the worker's own check (server/recycle.py, wired in the app's lifespan)
    # reads its resident memory, sees it grown and quiet, and the supervisor replaces it.
    config = suite_config(fake_openai[1], extra_providers=[SLOW_SIM])
    config["server"]["recycle"] = {"growth_mb": 1, "quiet_s": 1, "check_interval_s": 0.2}
    gateway = start_gateway(tmp_path, config, env={"FAKE_OPENAI_KEY": API_KEY})
    try:
        (old,) = _workers(gateway)
        time.sleep(0.5)  # its first checks: the lowest figure, before any traffic
        # A small burst: 600 requests held open together (connections, tasks, buffers) grow a
        # worker by a few MiB that it keeps afterwards (200 were not always enough for 1 MiB).
        statuses = asyncio.run(_burst(gateway, 600))
        assert statuses == [200] * 600
        _wait_gone(old)
        assert "asking for a replacement" in gateway.logs()
        _ask(gateway, "simulator/sim-small")  # the replacement serves
    finally:
        assert gateway.stop() == 0


def test_killing_the_supervisor_kills_its_workers(tmp_path: Path) -> None:
    gateway = start_gateway(tmp_path, None)
    (worker,) = _workers(gateway)
    gateway.process.send_signal(signal.SIGKILL)
    gateway.process.wait(10)
    worker.wait(10)  # raises psutil.TimeoutExpired if it outlived the supervisor
