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
