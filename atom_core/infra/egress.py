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
address among public ones is enough to refuse it. `http_get` connects
through `pinned_transport`, which resolves, checks and connects to the very
address it checked, so a DNS answer that changes between a check and the
connection (DNS rebinding) cannot slip through. Model providers' clients
(litellm's) resolve and connect on their own: their address (the tenant's
`api_base`, else the provider's default) is checked before each use, for a
clear error, and every connection they open during a tenant's call is checked
again as it is made (`connections_checked`), which also covers defaults ATOM
cannot see in advance and names that change their answer.
"""

from __future__ import annotations

import asyncio
import contextlib
import contextvars
import ipaddress
import socket
import ssl
import sys
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from typing import Any

import httpcore
import httpx

from atom_core.settings import get_settings

IPAddress = ipaddress.IPv4Address | ipaddress.IPv6Address
ALWAYS_REFUSED = (ipaddress.ip_network("169.254.0.0/16"), ipaddress.ip_network("fe80::/10"))
RESOLVE_TIMEOUT_S = 5.0


class Unresolvable(Exception):
    """The host name did not resolve."""


def private_networks_allowed() -> bool:
    return get_settings().private_networks_allowed


def refusal(address: IPAddress, *, allow_private: bool) -> str | None:
    """Why `address` may not be reached ("link-local", "private"), or None if it may.

    An IPv6 address that carries an IPv4 one (mapped, compatible, 6to4, Teredo, NAT64) is
    judged by both: a translator or tunnel delivers it to the IPv4 address inside.
    """
    addresses = [address, *_embedded_ipv4(address)]
    if any(a in network for a in addresses for network in ALWAYS_REFUSED):
        return "link-local"
    if allow_private:
        return None
    if address in _LOCAL_NAT64 or any(not a.is_global or a.is_multicast for a in addresses):
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
        if reason := refusal(address, allow_private=allow):
            return f"'{host}' {_REASONS[reason]}"
    return None


def _embedded_ipv4(address: IPAddress) -> list[ipaddress.IPv4Address]:
    """The IPv4 addresses an IPv6 one may lead to, by every standard way of carrying one."""
    if not isinstance(address, ipaddress.IPv6Address):
        return []
    found = [address.ipv4_mapped, address.sixtofour, address.teredo[1] if address.teredo else None]
    if address in _IPV4_COMPATIBLE and address not in _UNSPECIFIED_OR_LOOPBACK:  # ::a.b.c.d, deprecated, still routed
        found.append(ipaddress.IPv4Address(int(address) & 0xFFFFFFFF))
    if address in _NAT64:
        found.append(ipaddress.IPv4Address(int(address) & 0xFFFFFFFF))
    if address in _LOCAL_NAT64:  # RFC 8215: the prefix length is the operator's choice, so try each (RFC 6052)
        found += [_rfc6052_ipv4(address, length) for length in (48, 56, 64, 96)]
    return [a for a in found if a is not None]


def _rfc6052_ipv4(address: ipaddress.IPv6Address, prefix_length: int) -> ipaddress.IPv4Address:
    """The IPv4 address after a NAT64 prefix of this length (RFC 6052 skips bits 64-71)."""
    positions = [i for i in range(prefix_length // 8, 16) if i != 8][:4]
    return ipaddress.IPv4Address(bytes(address.packed[i] for i in positions))


_NAT64 = ipaddress.ip_network("64:ff9b::/96")
_LOCAL_NAT64 = ipaddress.ip_network("64:ff9b:1::/48")
_IPV4_COMPATIBLE = ipaddress.ip_network("::/96")
_UNSPECIFIED_OR_LOOPBACK = (ipaddress.ip_address("::"), ipaddress.ip_address("::1"))


# --- every connection of a provider call ------------------------------------------------


class ConnectionRefusedByPolicy(ConnectionRefusedError):
    """A connection this server does not allow; an OSError, so every client treats it as refused."""


@dataclass
class ConnectionPolicy:
    allow_private: bool
    refused: str | None = None  # the reason, once a connection was refused


_policy: contextvars.ContextVar[ConnectionPolicy | None] = contextvars.ContextVar("egress_policy", default=None)
_hook_installed = False


@contextlib.contextmanager
def connections_checked(allow_private: bool | None = None) -> Iterator[ConnectionPolicy]:
    """Check every TCP connection opened in this context (and the tasks and threads it
    starts) against the egress rules, at the moment it is made, whoever opens it."""
    _install_hook()
    policy = ConnectionPolicy(private_networks_allowed() if allow_private is None else allow_private)
    token = _policy.set(policy)
    try:
        yield policy
    finally:
        _policy.reset(token)


@contextlib.contextmanager
def connections_unchecked() -> Iterator[None]:
    """Leave `connections_checked` for ATOM's own work done inside a provider call (a streamed
    token published to Redis), whose connections follow the operator's settings, not a tenant's."""
    token = _policy.set(None)
    try:
        yield
    finally:
        _policy.reset(token)


def _install_hook() -> None:
    # An audit hook sees every socket.connect of the process, whichever library (httpx, aiohttp,
    # boto) makes it; it acts only inside `connections_checked`. Hooks cannot be removed: one, once.
    global _hook_installed
    if not _hook_installed:
        sys.addaudithook(_on_audit_event)
        _hook_installed = True


def _on_audit_event(event: str, args: tuple[Any, ...]) -> None:
    if event != "socket.connect":
        return
    policy = _policy.get()
    if policy is None:
        return
    sock, address = args
    if sock.family not in (socket.AF_INET, socket.AF_INET6) or not isinstance(address, tuple):
        return
    try:
        ip = ipaddress.ip_address(str(address[0]).split("%", 1)[0])
    except ValueError:  # a name: libraries pass resolved addresses, so be strict with the rare rest
        policy.refused = f"'{address[0]}' is not an address"
        raise ConnectionRefusedByPolicy(policy.refused) from None
    if reason := refusal(ip, allow_private=policy.allow_private):
        policy.refused = _REASONS[reason]
        raise ConnectionRefusedByPolicy(f"connection refused by this server's egress rules ({reason})")


_REASONS = {
    "link-local": "points to a link-local address (cloud metadata services live there): never allowed",
    "private": "points to a private, loopback or reserved address, which this server does not allow "
    "(ATOM_ALLOW_PRIVATE_NETWORKS)",
}


class PinnedBackend(httpcore.AsyncNetworkBackend):
    """httpcore's network layer, connecting only to addresses it checked itself."""

    def __init__(self, allow_private: bool) -> None:
        self.allow_private = allow_private
        self._inner = httpcore.AnyIOBackend()

    async def connect_tcp(
        self,
        host: str,
        port: int,
        timeout: float | None = None,  # noqa: ASYNC109 - httpcore's interface
        local_address: str | None = None,
        socket_options: Iterable[Any] | None = None,
    ) -> httpcore.AsyncNetworkStream:
        try:
            addresses = await resolve(host, port)
        except Unresolvable:
            raise httpcore.ConnectError(f"the host {host!r} could not be resolved") from None
        if any(refusal(address, allow_private=self.allow_private) for address in addresses):
            raise httpcore.ConnectError(f"{host!r} resolved to an address this server does not allow")
        failure: Exception = httpcore.ConnectError(f"the host {host!r} has no address")
        for address in addresses:  # TLS still checks the certificate against `host`, not the address
            try:
                return await self._inner.connect_tcp(
                    str(address), port, timeout=timeout, local_address=local_address, socket_options=socket_options
                )
            except (httpcore.ConnectError, httpcore.ConnectTimeout) as exc:
                failure = exc
        raise failure

    async def connect_unix_socket(self, path: str, timeout: float | None = None, socket_options: Any = None) -> Any:  # noqa: ASYNC109
        raise httpcore.ConnectError("unix sockets are not reachable from tools")

    async def sleep(self, seconds: float) -> None:
        await self._inner.sleep(seconds)


def pinned_transport(tls: ssl.SSLContext, *, allow_private: bool) -> httpx.AsyncHTTPTransport:
    """An httpx transport whose connections go to checked addresses only (see `PinnedBackend`)."""
    transport = httpx.AsyncHTTPTransport(verify=tls, trust_env=False)
    # httpx has no option for the network layer; its pool is httpcore's, rebuilt here with ours.
    transport._pool = httpcore.AsyncConnectionPool(ssl_context=tls, network_backend=PinnedBackend(allow_private))
    return transport
