"""Per-run facts and limits a tool may need (never shown to the model)."""

from __future__ import annotations

import ipaddress
from collections.abc import Iterable
from dataclasses import dataclass, field

import httpx

from atom_core.errors import Invalid
from atom_core.infra import egress


def host_key(url: httpx.URL) -> str:
    """The URL's host as allow-lists compare it: ASCII (IDNA), lower case, no trailing dot."""
    return url.raw_host.decode("ascii").lower().rstrip(".")


def listed_host(host: str) -> str:
    """`host` as an allow-list entry writes it: an IP address in its canonical form, IPv6 in
    brackets (so that `[v6]:port` and `[v6]` parse back the same), a name unchanged."""
    try:
        address = ipaddress.ip_address(host.strip("[]"))
    except ValueError:
        return host
    return f"[{address.compressed}]" if address.version == 6 else address.compressed


def normalize_allowed_host(entry: str) -> str:
    """Canonical form of one allow-list entry: `host` (any port) or `host:port` (`[v6]`, `[v6]:port`).

    The canonical form normalizes to itself. Raises Invalid naming the field
    `http_allowed_hosts` for anything that is not a bare host.
    """
    text = entry.strip() if isinstance(entry, str) else ""
    if not text or any(c in text for c in "/?#@\\ ") or "://" in text:
        raise Invalid(
            f"not a host name: {entry!r} (use e.g. api.example.com or api.example.com:8443)", field="http_allowed_hosts"
        )
    if _is_bare_ipv6(text):  # "::1" has no port: the colons are the address's own
        text = f"[{text}]"
    try:
        url = httpx.URL(f"entry://{text}")  # a scheme with no default port: "host:80" keeps its port
        host = host_key(url)
    except (httpx.InvalidURL, UnicodeError, ValueError) as exc:
        raise Invalid(f"not a host name: {entry!r}", field="http_allowed_hosts") from exc
    if not host:
        raise Invalid(f"not a host name: {entry!r}", field="http_allowed_hosts")
    if url.port is not None and not 0 < url.port < 65536:
        raise Invalid(f"not a valid port in {entry!r} (1 to 65535)", field="http_allowed_hosts")
    host = listed_host(host)
    return host if url.port is None else f"{host}:{url.port}"


def _is_bare_ipv6(text: str) -> bool:
    try:
        return ipaddress.ip_address(text).version == 6
    except ValueError:
        return False


@dataclass(frozen=True)
class ToolEnv:
    """What the runtime knows about this run that tools may use.

    `http_allowed_hosts` comes from the tenant's settings; empty means `http_get` is off.
    An entry `host` allows every port of that host, `host:port` only that port.
    `http_timeout_s` is a deadline for the whole request (connect, redirects, body).
    `allow_private_networks` (default: the server's setting) lets it reach private
    and loopback addresses; link-local ones never (see `atom_core.infra.egress`).
    """

    http_allowed_hosts: frozenset[str] = frozenset()
    http_max_bytes: int = 12_000
    http_timeout_s: float = 10.0
    http_max_redirects: int = 3
    allow_private_networks: bool = field(default_factory=egress.private_networks_allowed)

    def __post_init__(self) -> None:
        hosts: Iterable[str] = self.http_allowed_hosts
        if isinstance(hosts, str):
            raise Invalid("http_allowed_hosts must be a list of hosts, not one string", field="http_allowed_hosts")
        object.__setattr__(self, "http_allowed_hosts", frozenset(normalize_allowed_host(h) for h in hosts))
        if self.http_max_bytes <= 0:
            raise Invalid("http_max_bytes must be positive", field="http_max_bytes")
        if self.http_timeout_s <= 0:
            raise Invalid("http_timeout_s must be positive", field="http_timeout_s")
        if self.http_max_redirects < 0:
            raise Invalid("http_max_redirects must not be negative", field="http_max_redirects")

    def allows(self, url: httpx.URL) -> bool:
        """True when the URL's host (or host:port) is allow-listed."""
        host = listed_host(host_key(url))
        port = url.port or (443 if url.scheme == "https" else 80)
        return host in self.http_allowed_hosts or f"{host}:{port}" in self.http_allowed_hosts
