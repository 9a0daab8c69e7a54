"""The egress rules on their own: which addresses ATOM may reach for a tenant."""

from __future__ import annotations

import ipaddress

import pytest

from atom_core.infra import egress
from atom_core.settings import Settings


@pytest.mark.parametrize(
    ("address", "allowed_when_private_allowed", "allowed_otherwise"),
    [
        ("169.254.169.254", False, False),  # cloud metadata: never
        ("fe80::1", False, False),
        ("::ffff:169.254.169.254", False, False),  # the same, written as IPv6
        ("64:ff9b::a9fe:a9fe", False, False),  # and through NAT64
        ("127.0.0.1", True, False),
        ("::1", True, False),
        ("10.1.2.3", True, False),
        ("192.168.0.10", True, False),
        ("100.64.0.1", True, False),  # carrier-grade NAT
        ("0.0.0.0", True, False),
        ("93.184.215.14", True, True),
        ("2606:4700::1111", True, True),
    ],
)
def test_which_addresses_are_refused(address: str, allowed_when_private_allowed: bool, allowed_otherwise: bool) -> None:
    ip = ipaddress.ip_address(address)
    assert (egress.refusal(ip, allow_private=True) is None) is allowed_when_private_allowed
    assert (egress.refusal(ip, allow_private=False) is None) is allowed_otherwise


async def test_a_name_is_checked_by_every_address_it_resolves_to() -> None:
    reason = await egress.check_host("localhost", allow_private=False)
    assert reason is not None and "'localhost' points to a private" in reason
    assert await egress.check_host("localhost", allow_private=True) is None
    with pytest.raises(egress.Unresolvable):
        await egress.check_host("no-such-host.invalid", allow_private=True)


def test_private_networks_default_to_the_mode(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("ATOM_ALLOW_PRIVATE_NETWORKS", raising=False)
    embedded = Settings(database_url="sqlite:///x.db")
    server = Settings(database_url="postgresql://app@db/atom")
    assert embedded.private_networks_allowed is True and server.private_networks_allowed is False
    assert Settings(database_url="postgresql://app@db/atom", allow_private_networks=True).private_networks_allowed
    assert not Settings(database_url="sqlite:///x.db", allow_private_networks=False).private_networks_allowed


@pytest.mark.parametrize(
    ("address", "reason_when_private_allowed", "reason_otherwise"),
    [
        ("::7f00:1", None, "private"),  # IPv4-compatible ::127.0.0.1
        ("::127.0.0.1", None, "private"),
        ("::a9fe:a9fe", "link-local", "link-local"),  # ::169.254.169.254
        ("::ffff:7f00:1", None, "private"),  # IPv4-mapped
        ("64:ff9b::7f00:1", None, "private"),  # NAT64, well-known prefix
        ("64:ff9b:1::a9fe:a9fe", "link-local", "link-local"),  # local-use NAT64 with a /96 prefix
        ("64:ff9b:1:a9fe:a9:fe00::", "link-local", "link-local"),  # ... with a /48 prefix (RFC 6052 layout)
        ("64:ff9b:1::808:808", None, "private"),  # the local-use prefix is not public itself
        ("2002:7f00:1::1", None, "private"),  # 6to4 of 127.0.0.1
        ("2002:a9fe:a9fe::1", "link-local", "link-local"),
        ("2001:0:4136:e378:8000:63bf:80ff:fffe", None, "private"),  # Teredo, client 127.0.0.1
        ("::8.8.8.8", None, None),
        ("64:ff9b::808:808", None, None),
        ("2002:808:808::1", None, None),
    ],
)
def test_ipv6_forms_are_judged_by_the_ipv4_address_they_carry(
    address: str, reason_when_private_allowed: str | None, reason_otherwise: str | None
) -> None:
    ip = ipaddress.ip_address(address)
    assert egress.refusal(ip, allow_private=True) == reason_when_private_allowed
    assert egress.refusal(ip, allow_private=False) == reason_otherwise
