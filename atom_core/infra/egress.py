"""Which addresses ATOM may connect to on a tenant's behalf (`http_get`, a
provider's `api_base`): the guard against server-side request forgery.

- Link-local addresses (169.254.0.0/16, fe80::/10), where cloud metadata
  services answer with the machine's credentials, are refused always.
- Private, loopback and other non-public addresses are refused unless
  `ATOM_ALLOW_PRIVATE_NETWORKS` allows them. By default they are allowed in
  embedded mode (one user's machine, where Ollama on localhost is the common
  case) and refused in server mode, where tenants must not reach the
  operator's internal network.

A host is resolved and every address it resolves to is checked: one private
address among public ones is enough to refuse it. The HTTP client resolves
the name again when it connects, so a DNS server that answers differently
within milliseconds could still slip through; the check stops the common
cases (internal names, literal addresses, redirects to them).
"""

from __future__ import annotations

import asyncio
import ipaddress
import socket

from atom_core.settings import get_settings

IPAddress = ipaddress.IPv4Address | ipaddress.IPv6Address
ALWAYS_REFUSED = (ipaddress.ip_network("169.254.0.0/16"), ipaddress.ip_network("fe80::/10"))
RESOLVE_TIMEOUT_S = 5.0


class Unresolvable(Exception):
    """The host name did not resolve."""


def private_networks_allowed() -> bool:
    return get_settings().private_networks_allowed


def refusal(address: IPAddress, *, allow_private: bool) -> str | None:
    """Why `address` may not be reached ("link-local", "private"), or None if it may."""
    address = _embedded_ipv4(address) or address
    if any(address in network for network in ALWAYS_REFUSED):
        return "link-local"
    if not allow_private and (not address.is_global or address.is_multicast):
        return "private"
    return None


async def resolve(host: str, port: int | None = None) -> list[IPAddress]:
    """Every address `host` resolves to (an address literal resolves to itself)."""
    try:
        return [ipaddress.ip_address(host.strip("[]"))]
    except ValueError:
        pass
    loop = asyncio.get_running_loop()
    try:
        async with asyncio.timeout(RESOLVE_TIMEOUT_S):
            infos = await loop.getaddrinfo(host, port or 0, type=socket.SOCK_STREAM)
    except (OSError, TimeoutError, UnicodeError) as exc:
        raise Unresolvable(host) from exc
    return list(dict.fromkeys(ipaddress.ip_address(info[4][0]) for info in infos))


async def check_host(host: str, port: int | None = None, *, allow_private: bool | None = None) -> str | None:
    """None if every address of `host` may be reached, else a reason fit for the caller's error
    message (it never shows the resolved address: that would map the operator's network).

    Raises Unresolvable when the name does not resolve.
    """
    allow = private_networks_allowed() if allow_private is None else allow_private
    for address in await resolve(host, port):
        reason = refusal(address, allow_private=allow)
        if reason == "link-local":
            return f"'{host}' points to a link-local address (cloud metadata services live there): never allowed"
        if reason:
            return (
                f"'{host}' points to a private, loopback or reserved address, which this server does not allow "
                "(ATOM_ALLOW_PRIVATE_NETWORKS)"
            )
    return None


def _embedded_ipv4(address: IPAddress) -> ipaddress.IPv4Address | None:
    """The IPv4 address inside an IPv6 one (::ffff:a.b.c.d, 6to4, NAT64), which is where it really goes."""
    if not isinstance(address, ipaddress.IPv6Address):
        return None
    if address.ipv4_mapped or address.sixtofour:
        return address.ipv4_mapped or address.sixtofour
    if address in _NAT64:
        return ipaddress.IPv4Address(int(address) & 0xFFFFFFFF)
    return None


_NAT64 = ipaddress.ip_network("64:ff9b::/96")
