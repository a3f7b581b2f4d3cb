"""A process that journals usage events and is then killed with SIGKILL.

Run as `python -m tests.usage.dying URL JOURNAL PHASE REQUEST_ID...`; PHASE is `recorded` (killed
right after recording, nothing flushed) or `inserted` (killed after the batch reached the
database, before its segment was deleted).
"""

from __future__ import annotations

import asyncio
import os
import signal
import subprocess
import sys
from pathlib import Path

from relaygate.store.database import create_engine, sessionmaker
from relaygate.usage.journal import Segment
from relaygate.usage.recorder import UsageEvent, UsageRecorder

REPO = Path(__file__).resolve().parents[2]


def usage_event(request_id: str) -> UsageEvent:
    """A plausible finished chat request."""
    return UsageEvent(
        request_id=request_id,
        tenant_id="default",
        environment="production",
        key_id="key_test",
        endpoint="chat",
        route="fast",
        status=200,
        outcome="ok",
        provider="simulator",
        model="sim-small",
        prompt_tokens=12,
        completion_tokens=34,
        cost_usd=0.0001,
        latency_ms=5.0,
    )


def _die() -> None:
    os.kill(os.getpid(), signal.SIGKILL)


async def _main(url: str, journal: Path, phase: str, request_ids: list[str]) -> None:
    recorder = UsageRecorder(sessionmaker(create_engine(url)), journal_dir=journal)
    recorder.start()
    for request_id in request_ids:
        recorder.record(usage_event(request_id))
    if phase == "inserted":
        Segment.discard = lambda self: _die()  # type: ignore[method-assign]
        await recorder.flush()
    _die()


def record_and_die(url: str, journal: Path, phase: str, request_ids: list[str]) -> None:
    """Run the dying process and check that SIGKILL, not an error, ended it."""
    done = subprocess.run(
        [sys.executable, "-m", "tests.usage.dying", url, str(journal), phase, *request_ids],
        cwd=REPO,
        capture_output=True,
        timeout=60,
    )
    assert done.returncode == -signal.SIGKILL, done.stderr.decode(errors="replace")


if __name__ == "__main__":
    asyncio.run(_main(sys.argv[1], Path(sys.argv[2]), sys.argv[3], sys.argv[4:]))
