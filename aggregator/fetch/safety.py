"""Private-address checks on the address actually connected to; must not decide anything else about a fetch."""

from __future__ import annotations

import asyncio
import ipaddress
import socket

IPAddress = ipaddress.IPv4Address | ipaddress.IPv6Address


class BlockedAddressError(Exception):
    """The host resolves to an address that fetch.allow_private_addresses = false forbids."""


class DnsLookupError(Exception):
    """The host name did not resolve."""


def is_public_address(ip: IPAddress) -> bool:
    """False for loopback, private, link-local, CGNAT, unspecified, reserved and multicast addresses,
    also when written as IPv4-mapped or 6to4 IPv6."""
    if isinstance(ip, ipaddress.IPv6Address):
        embedded = ip.ipv4_mapped or ip.sixtofour
        if embedded is not None and not is_public_address(embedded):
            return False
    return ip.is_global and not ip.is_multicast


async def resolve_public(host: str, port: int) -> list[str]:
    """Every address of `host`; refuses when any of them is not public (a mixed answer is a rebinding sign)."""
    try:
        infos = await asyncio.get_running_loop().getaddrinfo(host, port, type=socket.SOCK_STREAM)
    except (socket.gaierror, UnicodeError) as exc:
        raise DnsLookupError(f"DNS lookup failed for {host}") from exc
    addresses: list[str] = []
    for info in infos:
        address = str(info[4][0]).split("%", 1)[0]  # drop an IPv6 zone id
        if not is_public_address(ipaddress.ip_address(address)):
            raise BlockedAddressError(f"{host} resolves to non-public address {address}")
        if address not in addresses:
            addresses.append(address)
    return addresses
