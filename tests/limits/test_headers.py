"""OpenAI's duration format and the text of a refusal."""

from __future__ import annotations

import math

import pytest

from relaygate.limits import Decision, Limit, Subject, duration, refusal_message


@pytest.mark.parametrize(
    ("seconds", "text"),
    [
        (0, "0s"),
        (-1, "0s"),
        (0.0001, "1ms"),
        (0.12, "120ms"),
        (0.999, "999ms"),
        (1, "1s"),
        (1.5, "1.5s"),
        (8.64, "8.64s"),
        (59.9991, "1m0s"),
        (60, "1m0s"),
        (179.56, "2m59.56s"),
        (360, "6m0s"),
        (3600, "1h0m0s"),
        (3725.01, "1h2m5.01s"),
    ],
)
def test_durations_read_like_openais(seconds: float, text: str) -> None:
    assert duration(seconds) == text


def _refused(subject: Subject, dimension: str, wait: float, never: bool = False) -> Decision:
    return Decision(False, None, wait, (subject, dimension), never, {})  # type: ignore[arg-type]


def test_a_refusal_names_the_scope_and_what_ran_out_but_no_id() -> None:
    tenant = Subject("tenant", "other-tenant-acme", Limit(rpm=60, tpm=40_000, concurrency=2))
    assert (
        refusal_message(_refused(tenant, "requests", 1.2))
        == "rate limit exceeded for tenant: requests per minute (limit 60); retry after 2 s"
    )
    user = Subject("user", "acme/wp-user-42", Limit(tpm=40_000))
    text = refusal_message(_refused(user, "tokens", 0.3))
    assert text == "rate limit exceeded for user: tokens per minute (limit 40000); retry after 1 s"
    key = Subject("key", "key_8f3a", Limit(concurrency=2))
    text = refusal_message(_refused(key, "concurrency", 1.0))
    assert text == "rate limit exceeded for key: concurrent requests (limit 2); retry after 1 s"
    for subject in (tenant, user, key):
        for dimension in ("requests", "tokens", "concurrency"):
            assert subject.id not in refusal_message(_refused(subject, dimension, 1.0))


def test_a_request_that_can_never_fit_says_waiting_will_not_help() -> None:
    key = Subject("key", "k1", Limit(tpm=1000))
    text = refusal_message(_refused(key, "tokens", math.inf, never=True))
    assert text.startswith("rate limit exceeded for key: tokens per minute (limit 1000)")
    assert "waiting will not help" in text
    assert "retry after" not in text
