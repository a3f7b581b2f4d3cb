"""Rate limits as the gateway sees them, on the in-process limiter and on real Redis alike."""

from __future__ import annotations

import math

import pytest

from relaygate.limits import Limit, Subject, refusal_message
from tests.limits.conftest import LEASE_TTL_S, Harness

# Real time passes between Redis calls; refill in that time blurs waits by a few milliseconds.
SLACK_S = 0.25


def _subject(scope: str = "key", id_: str = "k1", **limit: int) -> Subject:
    return Subject(scope, id_, Limit(**limit))  # type: ignore[arg-type]


async def test_rpm_admits_its_capacity_then_refuses_with_the_wait(harness: Harness) -> None:
    key = _subject(rpm=60)
    for _ in range(60):
        assert (await harness.limiter.acquire([key], 0)).allowed
    refused = await harness.limiter.acquire([key], 0)
    assert not refused.allowed
    assert refused.lease is None
    assert refused.denied == (key, "requests")
    assert not refused.never
    # One request refills in 60 s / 60 = 1 s.
    assert refused.retry_after_s == pytest.approx(1.0, abs=0 if harness.exact else SLACK_S)
    assert refused.headers["retry-after"] == "1"
    assert 1000 - SLACK_S * 1000 <= int(refused.headers["retry-after-ms"]) <= 1000
    assert refusal_message(refused).startswith(
        "rate limit exceeded for key: requests per minute (limit 60); retry after 1 s"
    )


async def test_rpm_refills_continuously(harness: Harness) -> None:
    key = _subject(rpm=6)  # one request every 10 s
    for _ in range(6):
        assert (await harness.limiter.acquire([key], 0)).allowed
    assert not (await harness.limiter.acquire([key], 0)).allowed
    await harness.advance(10.5)
    assert (await harness.limiter.acquire([key], 0)).allowed
    assert not (await harness.limiter.acquire([key], 0)).allowed
    await harness.advance(60)
    admitted = [(await harness.limiter.acquire([key], 0)).allowed for _ in range(7)]
    assert admitted == [True] * 6 + [False]  # refilled to the capacity, not beyond


async def test_tpm_takes_the_estimate_and_refuses_what_does_not_fit(harness: Harness) -> None:
    key = _subject(tpm=1000)
    first = await harness.limiter.acquire([key], 700)
    assert first.allowed
    assert first.headers["x-ratelimit-remaining-tokens"] == "300"
    refused = await harness.limiter.acquire([key], 400)
    assert not refused.allowed
    assert refused.denied == (key, "tokens")
    # 100 tokens short at 1000/60 per second: 6 s.
    assert refused.retry_after_s == pytest.approx(6.0, abs=0 if harness.exact else SLACK_S)
    assert (await harness.limiter.acquire([key], 300)).allowed


async def test_settle_refunds_an_overestimate(harness: Harness) -> None:
    key = _subject(tpm=1000)
    decision = await harness.limiter.acquire([key], 800)
    assert decision.lease is not None
    assert not (await harness.limiter.acquire([key], 500)).allowed
    await harness.limiter.settle(decision.lease, 200)  # 600 tokens come back
    after = await harness.limiter.acquire([key], 500)
    assert after.allowed
    assert int(after.headers["x-ratelimit-remaining-tokens"]) in (300, 301)


async def test_settle_takes_an_underestimate_as_debt_that_later_requests_wait_out(
    harness: Harness,
) -> None:
    key = _subject(tpm=600)  # 10 tokens per second
    decision = await harness.limiter.acquire([key], 500)
    assert decision.lease is not None
    await harness.limiter.settle(decision.lease, 800)  # level 100 - 300 = -200
    refused = await harness.limiter.acquire([key], 0)
    assert not refused.allowed
    assert refused.denied == (key, "tokens")
    assert refused.retry_after_s == pytest.approx(20.0, abs=0 if harness.exact else SLACK_S)
    assert refused.headers["x-ratelimit-remaining-tokens"] == "0"
    await harness.advance(21)
    assert (await harness.limiter.acquire([key], 0)).allowed


async def test_an_estimate_above_the_whole_capacity_can_never_be_admitted(
    harness: Harness,
) -> None:
    key = _subject(rpm=5, tpm=1000)
    refused = await harness.limiter.acquire([key], 1001)
    assert not refused.allowed
    assert refused.never
    assert refused.denied == (key, "tokens")
    assert math.isinf(refused.retry_after_s)
    assert refused.headers["x-should-retry"] == "false"
    assert "retry-after" not in refused.headers
    assert "waiting will not help" in refusal_message(refused)
    # It took nothing.
    after = await harness.limiter.acquire([key], 1000)
    assert after.allowed
    assert after.headers["x-ratelimit-remaining-requests"] == "4"


async def test_concurrency_admits_n_and_a_settle_frees_a_slot(harness: Harness) -> None:
    key = _subject(concurrency=2)
    first = await harness.limiter.acquire([key], 0)
    second = await harness.limiter.acquire([key], 0)
    assert first.allowed and second.allowed
    refused = await harness.limiter.acquire([key], 0)
    assert not refused.allowed
    assert refused.denied == (key, "concurrency")
    assert refused.retry_after_s == 1.0
    assert refused.headers == {"retry-after": "1", "retry-after-ms": "1000"}
    assert "concurrent requests (limit 2)" in refusal_message(refused)
    assert first.lease is not None
    await harness.limiter.settle(first.lease, 0)
    assert (await harness.limiter.acquire([key], 0)).allowed
    assert not (await harness.limiter.acquire([key], 0)).allowed


async def test_settle_is_idempotent(harness: Harness) -> None:
    key = _subject(tpm=1000, concurrency=2)
    a = await harness.limiter.acquire([key], 400)
    b = await harness.limiter.acquire([key], 400)
    assert a.lease is not None and b.lease is not None
    await harness.limiter.settle(a.lease, 100)
    await harness.limiter.settle(a.lease, 100)  # neither refunds again nor frees b's slot
    c = await harness.limiter.acquire([key], 0)
    assert c.allowed
    assert int(c.headers["x-ratelimit-remaining-tokens"]) in (500, 501)  # 1000 - 100 - 400
    assert not (await harness.limiter.acquire([key], 0)).allowed  # b and c hold both slots


async def test_a_refused_request_takes_nothing_from_any_subject(harness: Harness) -> None:
    key = _subject("key", "k1", rpm=10, tpm=1000, concurrency=5)
    tenant = _subject("tenant", "acme", rpm=1)
    assert (await harness.limiter.acquire([key, tenant], 100)).allowed
    refused = await harness.limiter.acquire([key, tenant], 100)
    assert not refused.allowed
    assert refused.denied == (tenant, "requests")
    # The key alone shows only the first request's take.
    alone = await harness.limiter.acquire([key], 100)
    assert alone.allowed
    assert alone.headers["x-ratelimit-remaining-requests"] == "8"
    assert int(alone.headers["x-ratelimit-remaining-tokens"]) in (800, 801)
    for _ in range(3):  # 5 slots: the first request and `alone` hold two
        assert (await harness.limiter.acquire([key], 0)).allowed
    assert not (await harness.limiter.acquire([key], 0)).allowed


async def test_the_longest_wait_among_refusing_subjects_is_reported(harness: Harness) -> None:
    user = _subject("user", "acme/u1", rpm=60)  # 1 s per request
    tenant = _subject("tenant", "acme", rpm=6)  # 10 s per request
    for _ in range(6):
        assert (await harness.limiter.acquire([user, tenant], 0)).allowed
    for _ in range(54):
        assert (await harness.limiter.acquire([user], 0)).allowed
    refused = await harness.limiter.acquire([user, tenant], 0)
    assert refused.denied == (tenant, "requests")
    assert refused.retry_after_s == pytest.approx(10.0, abs=0 if harness.exact else SLACK_S)
    assert refused.headers["retry-after"] == "10"


async def test_headers_have_openai_names_and_formats(harness: Harness) -> None:
    key = _subject(rpm=60, tpm=1000)
    first = await harness.limiter.acquire([key], 100)
    assert first.headers == {
        "x-ratelimit-limit-requests": "60",
        "x-ratelimit-remaining-requests": "59",
        "x-ratelimit-reset-requests": "1s",
        "x-ratelimit-limit-tokens": "1000",
        "x-ratelimit-remaining-tokens": "900",
        "x-ratelimit-reset-tokens": "6s",
    }
    second = await harness.limiter.acquire([key], 100)
    assert second.headers["x-ratelimit-remaining-requests"] == "58"
    assert second.headers["x-ratelimit-remaining-tokens"] == "800"
    if harness.exact:
        assert second.headers["x-ratelimit-reset-requests"] == "2s"
        assert second.headers["x-ratelimit-reset-tokens"] == "12s"


async def test_headers_follow_the_most_constrained_subject(harness: Harness) -> None:
    tenant = _subject("tenant", "acme", rpm=100, tpm=10_000)
    key = _subject("key", "k1", rpm=10, tpm=100_000)
    decision = await harness.limiter.acquire([tenant, key], 1000)
    assert decision.headers["x-ratelimit-limit-requests"] == "10"  # the key: 9 left
    assert decision.headers["x-ratelimit-remaining-requests"] == "9"
    assert decision.headers["x-ratelimit-limit-tokens"] == "10000"  # the tenant: 9000 left
    assert decision.headers["x-ratelimit-remaining-tokens"] == "9000"


async def test_subjects_without_rate_limits_get_no_headers(harness: Harness) -> None:
    decision = await harness.limiter.acquire([_subject(concurrency=3)], 10)
    assert decision.allowed
    assert decision.headers == {}
    assert (await harness.limiter.acquire([], 10)).allowed


async def test_an_unsettled_lease_stops_counting_after_its_ttl(harness: Harness) -> None:
    key = _subject(concurrency=1)
    held = await harness.limiter.acquire([key], 0)
    assert held.allowed
    assert not (await harness.limiter.acquire([key], 0)).allowed
    await harness.advance(LEASE_TTL_S + 1)
    again = await harness.limiter.acquire([key], 0)
    assert again.allowed
    assert held.lease is not None
    await harness.limiter.settle(held.lease, 0)  # too late: must not free the new holder's slot
    assert not (await harness.limiter.acquire([key], 0)).allowed


async def test_ids_with_separators_are_distinct_subjects(harness: Harness) -> None:
    a = _subject("user", "acme/wp:1", rpm=1)
    b = _subject("user", "acme/wp", rpm=1)
    c = _subject("key", "acme/wp:1", rpm=1)
    for subject in (a, b, c):
        assert (await harness.limiter.acquire([subject], 0)).allowed
    assert not (await harness.limiter.acquire([a], 0)).allowed


async def test_a_lowered_limit_applies_at_once(harness: Harness) -> None:
    assert (await harness.limiter.acquire([_subject(rpm=60)], 0)).allowed
    lowered = await harness.limiter.acquire([_subject(rpm=10)], 0)
    assert lowered.headers["x-ratelimit-remaining-requests"] == "9"  # not 58
