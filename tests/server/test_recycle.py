"""When a worker asks to be replaced: memory grown past the threshold and nothing in flight."""

from __future__ import annotations

import os
import signal
from pathlib import Path

import pytest

from relaygate.config.schema import RecycleConfig
from relaygate.server.recycle import ASK_AGAIN_AFTER_S, Recycler, resident_bytes

MIB = 1 << 20


class Machine:
    """What the recycler reads: a clock, a resident size, whether anything is in flight."""

    def __init__(self) -> None:
        self.now = 1000.0
        self.rss = 200 * MIB
        self.busy = False
        self.asked = 0

    def recycler(self, tmp_path: Path, **settings: float) -> Recycler:
        config = RecycleConfig(**{"growth_mb": 128, "quiet_s": 30, **settings})  # type: ignore[arg-type]
        return Recycler(
            config,
            tmp_path,
            lambda: self.busy,
            resident=lambda: self.rss,
            clock=lambda: self.now,
            ask=self.ask,
        )

    def ask(self) -> None:
        self.asked += 1


def test_asks_when_grown_and_quiet_long_enough_and_again_only_much_later(
    tmp_path: Path,
) -> None:
    machine = Machine()
    recycler = machine.recycler(tmp_path)
    assert not recycler.check()  # the lowest figure so far: 200 MiB
    machine.rss = 360 * MIB  # a burst: 160 MiB above
    machine.now += 29
    assert not recycler.check()  # quiet for 29 s only
    machine.now += 1
    assert recycler.check()
    machine.now += 60
    assert not recycler.check()  # asked already; the supervisor takes it from here
    assert machine.asked == 1
    machine.now += ASK_AGAIN_AFTER_S  # still running: the replacement must have failed
    assert recycler.check()
    assert machine.asked == 2


def test_growth_below_the_threshold_is_left_alone(tmp_path: Path) -> None:
    machine = Machine()
    recycler = machine.recycler(tmp_path)
    recycler.check()
    machine.rss = 327 * MIB  # 127 MiB above the lowest
    machine.now += 600
    assert not recycler.check()
    assert machine.asked == 0


def test_traffic_restarts_the_quiet_period(tmp_path: Path) -> None:
    machine = Machine()
    recycler = machine.recycler(tmp_path)
    recycler.check()
    machine.rss = 400 * MIB
    machine.now += 20
    machine.busy = True  # a request, a job or a resumable stream
    assert not recycler.check()
    machine.busy = False
    machine.now += 5
    assert not recycler.check()  # quiet again since now
    machine.now += 29
    assert not recycler.check()
    machine.now += 1
    assert recycler.check()


def test_the_baseline_is_the_lowest_figure_seen(tmp_path: Path) -> None:
    machine = Machine()
    recycler = machine.recycler(tmp_path, growth_mb=50)
    machine.rss = 300 * MIB
    recycler.check()
    machine.rss = 260 * MIB  # memory went back: a new baseline
    machine.now += 1
    recycler.check()
    machine.rss = 305 * MIB  # 45 above 260
    machine.now += 100
    assert not recycler.check()
    machine.rss = 310 * MIB
    assert recycler.check()


def test_asking_leaves_a_flag_and_signals_the_parent(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    sent: list[tuple[int, int]] = []
    monkeypatch.setattr("os.kill", lambda pid, signum: sent.append((pid, signum)))
    machine = Machine()
    config = RecycleConfig(growth_mb=16, quiet_s=1)
    recycler = Recycler(
        config, tmp_path, lambda: False, resident=lambda: machine.rss, clock=lambda: machine.now
    )
    recycler.check()
    machine.rss += 16 * MIB
    machine.now += 1
    assert recycler.check()
    assert (tmp_path / str(os.getpid())).exists()
    assert sent == [(os.getppid(), signal.SIGUSR1)]


def test_resident_memory_is_read_from_proc() -> None:
    rss = resident_bytes()
    if not Path("/proc/self/statm").exists():
        assert rss is None
        return
    assert rss is not None
    block = bytearray(64 * MIB)  # touched pages count
    for index in range(0, len(block), 4096):
        block[index] = 1
    grown = resident_bytes()
    assert grown is not None and grown - rss >= 60 * MIB
    del block
