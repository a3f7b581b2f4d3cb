"""Server-side request forgery guard for webhook deliveries.

A callback URL is resolved once; every resolved address is checked against a deny list (not
only `ipaddress.is_global`, which in Python 3.11 calls 224.0.0.1, NAT64 and 6to4 addresses
global), and the connection goes to exactly the vetted addresses, so a DNS answer that changes
between check and connect (rebinding) cannot reach an internal service. A tenant may open
specific private networks (a WordPress on its LAN) on its endpoint; nothing else gets through.
"""

from __future__ import annotations

import asyncio
import ipaddress
import socket
from dataclasses import dataclass, field
from typing import Any

from aiohttp.abc import AbstractResolver, ResolveResult
from aiohttp.resolver import ThreadedResolver
from yarl import URL

IPAddress = ipaddress.IPv4Address | ipaddress.IPv6Address
IPNetwork = ipaddress.IPv4Network | ipaddress.IPv6Network


def _table() -> tuple[tuple[IPNetwork, str], ...]:
    entries = (
        ("0.0.0.0/8", "this-network"),
        ("10.0.0.0/8", "private"),
        ("100.64.0.0/10", "cgnat"),
        ("127.0.0.0/8", "loopback"),
        ("169.254.0.0/16", "link-local"),
        ("172.16.0.0/12", "private"),
        ("192.0.0.0/24", "reserved"),
        ("192.0.2.0/24", "documentation"),
        ("192.168.0.0/16", "private"),
        ("198.18.0.0/15", "benchmark"),
        ("198.51.100.0/24", "documentation"),
        ("203.0.113.0/24", "documentation"),
        ("224.0.0.0/4", "multicast"),
        ("240.0.0.0/4", "reserved"),
        ("::/128", "unspecified"),
        ("::1/128", "loopback"),
        ("::ffff:0:0/96", "ipv4-mapped"),
        ("::/96", "ipv4-compatible"),
        ("64:ff9b::/96", "nat64"),
        ("64:ff9b:1::/48", "nat64"),
        ("100::/64", "discard"),
        ("2001::/32", "teredo"),
        ("2001:db8::/32", "documentation"),
        ("2002::/16", "6to4"),
        ("fc00::/7", "unique-local"),
        ("fe80::/10", "link-local"),
        ("ff00::/8", "multicast"),
    )
    return tuple((ipaddress.ip_network(net), reason) for net, reason in entries)


DENIED: tuple[tuple[IPNetwork, str], ...] = _table()


def is_denied(address: IPAddress) -> str | None:
    """Why `address` may not receive webhooks, or None if it may."""
    for network, reason in DENIED:
        if address.version == network.version and address in network:
            return reason
    return None


class UnsafeDestination(Exception):
    """A callback URL whose host resolves to an address we will not call."""


@dataclass(frozen=True, slots=True)
class Destination:
    """Where deliveries may go: public addresses, plus networks the tenant opened, never the
    gateway's own addresses unless opened explicitly."""

    allow_private: frozenset[IPNetwork] = frozenset()
    own_addresses: frozenset[IPAddress] = field(default_factory=frozenset)

    def opened(self, address: IPAddress) -> bool:
        """Whether the tenant allowlisted `address`."""
        return any(address.version == n.version and address in n for n in self.allow_private)

    def check(self, host: str, address: IPAddress, *, resolved: bool = False) -> None:
        """Raise UnsafeDestination unless `address` (`host` itself, or what `host` `resolved`
        to) may be called."""
        if self.opened(address):
            return
        reason = "the gateway itself" if address in self.own_addresses else is_denied(address)
        if reason is None:
            return
        inner = embedded_ipv4(address)
        detail = ""
        if inner is not None:
            inner_reason = is_denied(inner)
            detail = f" carrying {inner}" + (f" ({inner_reason})" if inner_reason else "")
        if resolved:
            raise UnsafeDestination(f"{host[:100]} resolves to {address}: {reason} address{detail}")
        shown = host[:100] if host.strip("[]") == str(address) else f"{host[:100]} ({address})"
        raise UnsafeDestination(f"{shown}: {reason} address{detail}")


def embedded_ipv4(address: IPAddress) -> ipaddress.IPv4Address | None:
    """The IPv4 address carried inside an IPv6 one (mapped, compatible, NAT64, 6to4, Teredo)."""
    if address.version == 4:
        return None
    assert isinstance(address, ipaddress.IPv6Address)
    if address.ipv4_mapped is not None:
        return address.ipv4_mapped
    if address.sixtofour is not None:
        return address.sixtofour
    if address.teredo is not None:
        return address.teredo[1]
    low = int(address) & 0xFFFFFFFF
    for prefix in ("::/96", "64:ff9b::/96"):
        if address in ipaddress.ip_network(prefix) and int(address) > 1:
            return ipaddress.IPv4Address(low)
    return None


class InvalidHost(ValueError):
    """A URL host that looks like an IP address but is not a valid one, or carries a zone id."""


def _ipv4_part(part: str) -> int:
    """One part of a (WHATWG / inet_aton) IPv4 host: decimal, 0-prefixed octal or 0x hex."""
    text = part.lower()
    if text.startswith("0x"):
        digits, base = text[2:], 16
    elif len(text) > 1 and text.startswith("0"):
        digits, base = text[1:], 8
    else:
        digits, base = text, 10
    allowed = "0123456789abcdef"[:base]
    if not digits:
        return 0
    if not all(c in allowed for c in digits) or len(digits) > 32:
        raise InvalidHost(f"{part[:40]!r} is not a number")
    return int(digits, base)


def _ends_in_a_number(host: str) -> bool:
    labels = host.split(".")
    if labels[-1] == "" and len(labels) > 1:
        labels.pop()
    last = labels[-1].lower()
    if last and last.isascii() and last.isdigit():
        return True
    return last.startswith("0x") and all(c in "0123456789abcdef" for c in last[2:])


def numeric_ipv4(host: str) -> ipaddress.IPv4Address | None:
    """The address a numeric host denotes in any form browsers and `inet_aton` accept
    (`2130706433`, `0177.0.0.1`, `127.1`, `0x7f.1`, a trailing dot), None for a host name;
    InvalidHost when it ends in a number but is no valid address (`1.2.3.4.5`, `256.1.1.1`)."""
    if not _ends_in_a_number(host):
        return None
    parts = host.split(".")
    if parts[-1] == "":
        parts.pop()
    if not 1 <= len(parts) <= 4:
        raise InvalidHost(f"{host[:100]} is not a valid IPv4 address")
    numbers = [_ipv4_part(p) for p in parts]
    last_limit = 256 ** (5 - len(numbers))
    if any(n > 255 for n in numbers[:-1]) or numbers[-1] >= last_limit:
        raise InvalidHost(f"{host[:100]} is not a valid IPv4 address")
    value = numbers[-1]
    for index, number in enumerate(numbers[:-1]):
        value += number << (8 * (3 - index))
    return ipaddress.IPv4Address(value)


def literal(host: str) -> IPAddress | None:
    """The address a URL host denotes if it is an IP literal in any spelling (IPv6 in brackets,
    every numeric IPv4 form), else None for a host name. InvalidHost for a numeric host that is
    no valid address and for IPv6 zone ids (`fe80::1%eth0`), which a webhook never needs."""
    text = host.strip().lower()
    if text.startswith("[") or ":" in text:
        inner = text.strip("[]")
        if "%" in inner:
            raise InvalidHost("IPv6 zone ids (%...) are not allowed in webhook URLs")
        try:
            return ipaddress.IPv6Address(inner)
        except ValueError:
            raise InvalidHost(f"{host[:100]} is not a valid IPv6 address") from None
    return numeric_ipv4(text)


class VettingResolver(AbstractResolver):
    """Resolves once and hands aiohttp only addresses that passed the check: if any address of
    the answer is denied the whole host is refused (an attacker mixing public and private
    records gets nothing)."""

    def __init__(self, destination: Destination, inner: AbstractResolver | None = None) -> None:
        self.destination = destination
        self.inner = inner or ThreadedResolver()

    async def resolve(
        self, host: str, port: int = 0, family: socket.AddressFamily = socket.AF_INET
    ) -> list[ResolveResult]:
        results = await self.inner.resolve(host, port, family)
        if not results:
            raise UnsafeDestination(f"{host[:100]} does not resolve")
        for result in results:
            # The same parse as for URL literals: a zone id or an odd spelling is refused too.
            try:
                address = literal(str(result["host"]))
            except InvalidHost:
                address = None
            if address is None:
                raise UnsafeDestination(f"{host[:100]} resolves to something not an address")
            self.destination.check(host, address, resolved=True)
        return results

    async def close(self) -> None:
        await self.inner.close()


def check_url_shape(url: Any) -> None:
    """Refuse URLs a webhook must never have: other schemes, user info, no host."""
    parsed = URL(str(url))
    if parsed.scheme not in {"http", "https"}:
        raise ValueError("webhook URLs must use https (or http)")
    if not parsed.host:
        raise ValueError("webhook URLs need a host")
    if parsed.user is not None or parsed.password is not None:
        raise ValueError("webhook URLs may not carry user:password")


NAME_NOTE = "{host} is a host name: it is resolved and checked again at every delivery"
UNRESOLVED_NOTE = (
    "{host} does not resolve now; it is resolved and checked at every delivery, and"
    " deliveries fail until it resolves to an allowed address"
)


async def vet_registration(
    url: str,
    destination: Destination,
    *,
    resolver: AbstractResolver | None = None,
    timeout_s: float = 2.0,
) -> str | None:
    """Judge a URL being registered as far as the guard can now.

    A literal address (in any spelling) is decided here: UnsafeDestination if refused. A host
    name is resolved once: if it resolves to a refused address now, UnsafeDestination too;
    otherwise the note to show (the name is checked again at every delivery, since its answer
    may change). ValueError for a malformed URL.
    """
    check_url_shape(url)
    host = URL(url).host or ""
    try:
        address = literal(host)
    except InvalidHost as exc:
        raise UnsafeDestination(str(exc)) from None
    if address is not None:
        destination.check(host, address)
        return None
    inner = resolver or ThreadedResolver()
    try:
        results = await asyncio.wait_for(inner.resolve(host, 0, socket.AF_UNSPEC), timeout_s)
    except (OSError, TimeoutError):
        results = []
    finally:
        if resolver is None:
            await inner.close()
    if not results:
        return UNRESOLVED_NOTE.format(host=host[:100])
    for result in results:
        try:
            resolved = literal(str(result["host"]))
        except InvalidHost:
            resolved = None
        if resolved is None:
            raise UnsafeDestination(f"{host[:100]} resolves to something not an address")
        destination.check(host, resolved, resolved=True)
    return NAME_NOTE.format(host=host[:100])
