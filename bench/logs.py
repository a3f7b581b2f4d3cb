"""What a log line costs: the access log's line (with and without redaction), the redaction of a
typical provider error message, and a plain stdlib log call for scale. CPU time per line in
this process, written to /dev/null; the access line is written after its answer (in batches),
so this is CPU taken from the worker, not latency added to a request (`bench.ab` shows that).

    .venv/bin/python -m bench.logs [--lines 20000]
"""

from __future__ import annotations

import argparse
import logging
import os
import time
from collections.abc import Callable

from relaygate.observability.access import AccessLog
from relaygate.observability.redaction import Redactor
from relaygate.observability.setup import install
from relaygate.usage.recorder import UsageEvent

MESSAGE = (
    "provider 'openai' answered HTTP 500 (server_error): The server had an error while"
    " processing your request. Sorry about that! You can retry your request, or contact us"
    " through our help center at help.openai.com if the error persists."
)


def per_call_us(action: Callable[[int], object], count: int) -> float:
    """Microseconds per call of `action(i)`, after a warm-up."""
    for i in range(count // 10):
        action(i)
    started = time.perf_counter()
    for i in range(count):
        action(i)
    return (time.perf_counter() - started) / count * 1e6


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--lines", type=int, default=20000)
    count = parser.parse_args().lines
    with open(os.devnull, "w") as sink:
        access = AccessLog()

        def access_line(i: int) -> None:
            entry, token = access.begin(f"req_06b4b19104e717c1{i:016x}", "POST", "/v1/chat")
            entry.status = 200
            access.on_usage(
                UsageEvent(
                    request_id=entry.request_id,
                    tenant_id="default",
                    environment="production",
                    key_id="0xX6QmtbK",
                    endpoint="chat",
                    route="fast",
                    status=200,
                    outcome="ok",
                    provider="openai",
                    model="gpt-4o-mini",
                    prompt_tokens=11,
                    completion_tokens=48,
                    cost_usd=3.045e-05,
                )
            )
            access.end(entry, token)  # no event loop here: written at once

        plain = logging.getLogger("bench.plain")
        install("json", "info", None, sink)
        results = {
            "plain stdlib log call, JSON": per_call_us(lambda i: plain.info("x %d", i), count)
        }
        results["access line, no redaction"] = per_call_us(access_line, count)
        install("json", "info", Redactor(), sink)
        results["access line, redacted"] = per_call_us(access_line, count)
        redactor = Redactor()
        results["redact a 230-character message"] = per_call_us(
            lambda i: redactor.redact(f"{MESSAGE} {i}"), count
        )
    for name, value in results.items():
        print(f"{name:34} {value:7.1f} us")


if __name__ == "__main__":
    main()
