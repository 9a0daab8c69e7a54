"""Two tenants: nothing of tenant B is readable, changeable or deletable by A,
through the API or the services, on both backends."""

from __future__ import annotations

import httpx

from atom_core.governance import audit
from atom_core.tenancy import service as tenancy


async def two_tenants(client: httpx.AsyncClient, make_account):
    a = await make_account("Tenant A")
    b = await make_account("Tenant B")
    b_key = (await client.post("/api/v1/api-keys", json={"name": "b-key"}, headers=b.headers)).json()
    return a, b, b_key


async def test_a_cannot_touch_bs_api_keys(client: httpx.AsyncClient, make_account) -> None:
    a, _, b_key = await two_tenants(client, make_account)
    assert (await client.delete(f"/api/v1/api-keys/{b_key['id']}", headers=a.headers)).status_code == 404
    assert (await client.get("/api/v1/api-keys", headers=a.headers)).json()["items"] == []
    # B's key still works: A's attempt changed nothing.
    still = await client.get("/api/v1/me", headers={"Authorization": f"Bearer {b_key['key']}"})
    assert still.status_code == 200


async def test_a_cannot_see_or_remove_bs_members(client: httpx.AsyncClient, make_account) -> None:
    a, b, _ = await two_tenants(client, make_account)
    members = (await client.get("/api/v1/members", headers=a.headers)).json()["items"]
    assert [m["email"] for m in members] == [a.email]
    assert (await client.delete(f"/api/v1/members/{b.user_id}", headers=a.headers)).status_code == 404
    assert [m["email"] for m in (await client.get("/api/v1/members", headers=b.headers)).json()["items"]] == [b.email]


async def test_a_cannot_enter_b_with_token_or_key(client: httpx.AsyncClient, make_account) -> None:
    a, b, b_key = await two_tenants(client, make_account)
    as_a = await client.get("/api/v1/me", headers=a.headers | {"X-Tenant-ID": b.tenant_id})
    assert as_a.status_code == 403
    b_key_into_a = await client.get(
        "/api/v1/me", headers={"Authorization": f"Bearer {b_key['key']}", "X-Tenant-ID": a.tenant_id}
    )
    assert b_key_into_a.status_code == 403
    # A's view of tenants never includes B.
    tenants = (await client.get("/api/v1/me", headers=a.headers)).json()["tenants"]
    assert [t["tenant_id"] for t in tenants] == [a.tenant_id]


async def test_audit_entries_stay_in_their_tenant(client: httpx.AsyncClient, make_account) -> None:
    a, b, _ = await two_tenants(client, make_account)
    ctx_a = await tenancy.authenticate(a.token)
    ctx_b = await tenancy.authenticate(b.token)
    events_a = await audit.list_events(ctx_a)
    events_b = await audit.list_events(ctx_b)
    assert {e.tenant_id for e in events_a} == {ctx_a.tenant_id}
    assert {e.action for e in events_b} == {"tenant.created", "apikey.created"}
    assert not {e.id for e in events_a} & {e.id for e in events_b}
