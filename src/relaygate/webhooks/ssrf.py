"""Server-side request forgery guard for webhook deliveries.

A callback URL is resolved once; every resolved address is checked against a deny list (not
only `ipaddress.is_global`, which in Python 3.11 calls 224.0.0.1, NAT64 and 6to4 addresses
global), and the connection goes to exactly the vetted addresses, so a DNS answer that changes
between check and connect (rebinding) cannot reach an internal service. A tenant may open
specific private networks (a WordPress on its LAN) on its endpoint; nothing else gets through.
"""

from __future__ import annotations

import ipaddress
import socket
from dataclasses import dataclass, field
from typing import Any

from aiohttp.abc import AbstractResolver, ResolveResult
from aiohttp.resolver import ThreadedResolver

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

    def check(self, host: str, address: IPAddress) -> None:
        """Raise UnsafeDestination unless `address` (for `host`) may be called."""
        if self.opened(address):
            return
        reason = "the gateway itself" if address in self.own_addresses else is_denied(address)
        if reason is not None:
            raise UnsafeDestination(f"{host[:100]} resolves to a {reason} address")


def literal(host: str) -> IPAddress | None:
    """The address if `host` is an IP literal (brackets allowed), else None."""
    try:
        return ipaddress.ip_address(host.strip("[]"))
    except ValueError:
        return None


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
            self.destination.check(host, ipaddress.ip_address(result["host"]))
        return results

    async def close(self) -> None:
        await self.inner.close()


def check_url_shape(url: Any) -> None:
    """Refuse URLs a webhook must never have: other schemes, user info, no host."""
    from yarl import URL

    parsed = URL(str(url))
    if parsed.scheme not in {"http", "https"}:
        raise ValueError("webhook URLs must use https (or http)")
    if not parsed.host:
        raise ValueError("webhook URLs need a host")
    if parsed.user is not None or parsed.password is not None:
        raise ValueError("webhook URLs may not carry user:password")
