"""Configuration of the worker heartbeat and the Redis prefix override (issue 31)."""

from __future__ import annotations

import pytest

from relaygate.config.loader import ConfigError, parse_config
from relaygate.jobs.health import JobsHealth

SIMULATOR = {"providers": [{"name": "o", "type": "simulator", "models": [{"name": "m"}]}]}


def test_a_timeout_shorter_than_the_heartbeat_is_refused_by_name() -> None:
    raw = {**SIMULATOR, "jobs": {"worker_heartbeat_s": 10, "worker_timeout_s": 5}}
    with pytest.raises(ConfigError) as info:
        parse_config(raw, "test", environ={})
    assert info.value.problems == [
        "jobs: worker_timeout_s must be longer than worker_heartbeat_s (a live worker would look"
        " gone between two heartbeats)"
    ]


def test_the_redis_prefix_has_an_environment_override() -> None:
    config = parse_config(SIMULATOR, "test", environ={"RELAYGATE_REDIS_PREFIX": "site-b:"})
    assert config.server.redis_prefix == "site-b:"
    with pytest.raises(ConfigError) as info:
        parse_config(SIMULATOR, "test", environ={"RELAYGATE_REDIS_PREFIX": "x" * 65})
    assert info.value.problems[0].startswith("server.redis_prefix:")


@pytest.mark.parametrize(
    ("health", "summary"),
    [
        (
            JobsHealth("degraded", "redis", False, 0, 95.2, 30, 12, 80.4),
            "degraded: no worker seen for 95 s, queued jobs cannot be taken;"
            " 12 queued, the oldest for 80 s",
        ),
        (
            JobsHealth("degraded", "redis", False, 0, None, 30, 0, None),
            "degraded: no worker has announced itself, queued jobs cannot be taken; 0 queued",
        ),
        (
            JobsHealth("degraded", "redis", False, None, None, 30, None, None, "x unreachable"),
            "degraded: x unreachable; queue depth unknown",
        ),
        (
            JobsHealth("ok", "redis", False, 2, 1.0, 30, 3, 0.5),
            "ok (2 worker(s) seen; 3 queued, the oldest for 0 s)",
        ),
    ],
)
def test_the_summary_line_says_what_an_operator_needs(health: JobsHealth, summary: str) -> None:
    assert health.summary() == summary
