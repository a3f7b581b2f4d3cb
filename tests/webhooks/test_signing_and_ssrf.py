"""Standard Webhooks signatures (published vector, the official package as oracle), the SSRF
deny list, the resolver that hands aiohttp only vetted addresses, and the retry schedule."""

from __future__ import annotations

import ipaddress
import random
import re
import socket
from datetime import UTC, datetime, timedelta
from email.utils import format_datetime

import pytest
from aiohttp.abc import AbstractResolver, ResolveResult
from standardwebhooks.webhooks import Webhook, WebhookVerificationError

from relaygate.webhooks import schedule, signing
from relaygate.webhooks.ssrf import (
    Destination,
    InvalidHost,
    UnsafeDestination,
    VettingResolver,
    is_denied,
    literal,
)

VECTOR_SECRET = "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw"


def test_the_published_standard_webhooks_vector() -> None:
    signature = signing.sign(
        [VECTOR_SECRET], "msg_p5jXN8AQM9LWM0D4loKWxJek", 1614265330, b'{"test": 2432232314}'
    )
    assert signature == "v1,g0hM9SsE+OTPJTGt/tmIKtSyZlE3uFJELVlNIOLJ1OE="


def test_the_official_package_verifies_every_secret_during_a_rotation() -> None:
    old, new = signing.new_secret(), signing.new_secret()
    body = b'{"type":"job.succeeded"}'
    now = int(datetime.now(UTC).timestamp())
    headers = signing.headers([old, new], signing.new_message_id(), now, body)
    assert len(headers["webhook-signature"].split(" ")) == 2
    for secret in (old, new):
        assert Webhook(secret).verify(body, headers) == {"type": "job.succeeded"}
    with pytest.raises(WebhookVerificationError):
        Webhook(old).verify(body + b" ", headers)
    with pytest.raises(WebhookVerificationError):
        Webhook(signing.new_secret()).verify(body, headers)


@pytest.mark.parametrize("secret", ["whsec_not base64!", "whsec_" + "QUJD", "c2hvcnQ="])
def test_malformed_secrets_are_refused_without_quoting_them(secret: str) -> None:
    with pytest.raises(ValueError) as caught:
        signing.decode_secret(secret)
    assert secret.removeprefix("whsec_") not in str(caught.value)


@pytest.mark.parametrize(
    ("address", "reason"),
    [
        ("127.0.0.1", "loopback"),
        ("10.1.2.3", "private"),
        ("172.16.0.1", "private"),
        ("192.168.1.1", "private"),
        ("169.254.169.254", "link-local"),
        ("100.64.0.1", "cgnat"),
        ("0.1.2.3", "this-network"),
        ("198.18.0.1", "benchmark"),
        ("240.0.0.1", "reserved"),
        ("255.255.255.255", "reserved"),
        ("224.0.0.1", "multicast"),
        ("::1", "loopback"),
        ("::", "unspecified"),
        ("fd00::1", "unique-local"),
        ("fe80::1", "link-local"),
        ("ff02::1", "multicast"),
        ("::ffff:127.0.0.1", "ipv4-mapped"),
        ("::ffff:8.8.8.8", "ipv4-mapped"),
        ("64:ff9b::102:304", "nat64"),
        ("2002:7f00:1::1", "6to4"),
        ("2001:0:4136:e378:8000:63bf:3fff:fdd2", "teredo"),
        ("2001:db8::1", "documentation"),
    ],
)
def test_the_deny_list_covers_what_is_global_misses(address: str, reason: str) -> None:
    assert is_denied(ipaddress.ip_address(address)) == reason


@pytest.mark.parametrize("address", ["8.8.8.8", "1.1.1.1", "2606:4700:4700::1111"])
def test_public_addresses_pass(address: str) -> None:
    assert is_denied(ipaddress.ip_address(address)) is None


def test_an_allowlisted_network_opens_only_itself() -> None:
    destination = Destination(allow_private=frozenset({ipaddress.ip_network("10.0.0.5/32")}))
    destination.check("wp.lan", ipaddress.ip_address("10.0.0.5"))
    with pytest.raises(UnsafeDestination, match="private"):
        destination.check("wp.lan", ipaddress.ip_address("10.0.0.6"))
    own = Destination(own_addresses=frozenset({ipaddress.ip_address("203.0.114.7")}))
    with pytest.raises(UnsafeDestination, match="gateway itself"):
        own.check("me.example", ipaddress.ip_address("203.0.114.7"))


class _Answers(AbstractResolver):
    def __init__(self, *addresses: str) -> None:
        self.addresses = addresses
        self.calls = 0

    async def resolve(
        self, host: str, port: int = 0, family: socket.AddressFamily = socket.AF_INET
    ) -> list[ResolveResult]:
        self.calls += 1
        return [
            ResolveResult(hostname=host, host=a, port=port, family=family, proto=0, flags=0)
            for a in self.addresses
        ]

    async def close(self) -> None:
        return None


async def test_one_private_record_among_public_ones_refuses_the_host() -> None:
    resolver = VettingResolver(Destination(), _Answers("93.184.215.14", "10.0.0.1"))
    with pytest.raises(UnsafeDestination, match="private"):
        await resolver.resolve("rebind.example", 443)


@pytest.mark.parametrize(
    ("answer", "reason"),
    [
        ("::ffff:127.0.0.1", "ipv4-mapped address carrying 127.0.0.1 (loopback)"),
        ("64:ff9b::a9fe:a9fe", "nat64 address carrying 169.254.169.254 (link-local)"),
        ("2002:a00:1::1", "6to4 address carrying 10.0.0.1 (private)"),
        ("fe80::1%eth0", "not an address"),
        ("0x7f.1", "loopback"),
    ],
)
async def test_dns_answers_are_read_like_url_hosts(answer: str, reason: str) -> None:
    resolver = VettingResolver(Destination(), _Answers(answer))
    with pytest.raises(UnsafeDestination, match=re.escape(reason)):
        await resolver.resolve("rebind.example", 443)


@pytest.mark.parametrize(
    ("host", "address"),
    [
        ("2130706433", "127.0.0.1"),
        ("0177.0.0.1", "127.0.0.1"),
        ("127.1", "127.0.0.1"),
        ("0x7f.1", "127.0.0.1"),
        ("0x7F.0.0.1.", "127.0.0.1"),
        ("10.1.1", "10.1.0.1"),
        ("0", "0.0.0.0"),
        ("[::ffff:7f00:1]", "::ffff:7f00:1"),
        ("example.com", None),
        ("1e1.example", None),
        ("0x.example", None),
    ],
)
def test_every_numeric_spelling_is_read_as_the_address_it_means(
    host: str, address: str | None
) -> None:
    found = literal(host)
    assert (str(found) if found is not None else None) == address


@pytest.mark.parametrize(
    "host", ["1.2.3.4.5", "256.1.1.1", "1.16777216", "0x1g.1", "09.1", "[fe80::1%eth0]"]
)
def test_numeric_hosts_that_are_no_address_are_refused(host: str) -> None:
    with pytest.raises(InvalidHost):
        literal(host)


async def test_the_resolver_returns_exactly_the_vetted_answer_from_one_lookup() -> None:
    inner = _Answers("93.184.215.14", "2606:4700:4700::1111")
    results = await VettingResolver(Destination(), inner).resolve("ok.example", 443)
    assert [r["host"] for r in results] == ["93.184.215.14", "2606:4700:4700::1111"]
    assert inner.calls == 1


def test_the_schedule_is_svix_like_with_twenty_percent_jitter() -> None:
    rng = random.Random(7)
    expected = [5, 300, 1800, 7200, 18000, 36000, 36000]
    for attempt, base in enumerate(expected, start=1):
        delay = schedule.next_delay(attempt, rng)
        assert delay is not None and base * 0.8 <= delay <= base * 1.2
    assert schedule.next_delay(8, rng) is None  # eight attempts in all, then a dead letter


def test_retry_after_is_clamped_between_the_schedule_and_twice_it() -> None:
    assert schedule.honour_retry_after(300, "60") == 300
    assert schedule.honour_retry_after(300, "450") == 450
    assert schedule.honour_retry_after(300, "99999") == 600
    later = datetime.now(UTC) + timedelta(seconds=400)
    assert 390 <= schedule.honour_retry_after(300, format_datetime(later, usegmt=True)) <= 410
    assert schedule.honour_retry_after(300, "soon, maybe") == 300
