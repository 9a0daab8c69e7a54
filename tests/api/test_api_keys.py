"""API key ownership: every key has an owner (a user, or the operator for CLI
keys), never outlives it, and who may list or revoke it follows role and owner."""

from __future__ import annotations

import uuid

import httpx
import pytest
from sqlalchemy.exc import IntegrityError

from atom_core.db import session_scope
from atom_core.tenancy import apikeys
from atom_core.tenancy import service as tenancy
from atom_core.tenancy.models import ApiKey
from tests.api.test_auth import KEYS, ME, MEMBERS, assert_401, assert_403, bearer, join


async def make_key(client: httpx.AsyncClient, headers: dict, name: str, role: str = "member") -> dict:
    response = await client.post(KEYS, json={"name": name, "role": role}, headers=headers)
    assert response.status_code == 201, response.text
    return response.json()


async def operator_key(tenant_id: str, role: str = "admin") -> apikeys.NewApiKey:
    """What `atom apikey create` makes."""
    return await apikeys.create(tenancy.operator_ctx(uuid.UUID(tenant_id)), "ops", role)


async def listed(client: httpx.AsyncClient, headers: dict) -> set[str]:
    response = await client.get(KEYS, headers=headers)
    assert response.status_code == 200, response.text
    return {k["name"] for k in response.json()["items"]}


async def test_a_key_made_with_a_key_belongs_to_the_person_behind_it(client: httpx.AsyncClient, make_account) -> None:
    owner = await make_account()
    user, member = await join(client, make_account, owner, "member")
    first = await make_key(client, member, "first")
    second = await make_key(client, bearer(first["key"]), "second")
    third = await make_key(client, bearer(second["key"]), "third")
    for key in (first, second, third):
        assert (key["owner_kind"], key["created_by"]) == ("user", user.user_id)
    assert await listed(client, bearer(third["key"])) == {"first", "second", "third"}

    assert (await client.delete(f"{MEMBERS}/{user.user_id}", headers=owner.headers)).status_code == 204

    for key in (first, second, third):  # a removed member keeps no access through any of them
        assert_401(await client.get(ME, headers=bearer(key["key"])), "api_key_revoked")


async def test_operator_keys_are_neither_listed_nor_revoked_by_members(client: httpx.AsyncClient, make_account) -> None:
    owner = await make_account()
    _, member = await join(client, make_account, owner, "member")
    ops = await operator_key(owner.tenant_id)
    assert (ops.info.owner_kind, ops.info.created_by) == ("operator", None)
    members_key = await make_key(client, member, "member-key")
    ops_member_key = (await operator_key(owner.tenant_id, role="member")).key

    for headers in (member, bearer(members_key["key"])):
        assert await listed(client, headers) == {"member-key"}
        assert_403(await client.delete(f"{KEYS}/{ops.info.id}", headers=headers))
    # A member-role key of the operator acts for nobody: it owns no keys.
    assert await listed(client, bearer(ops_member_key)) == set()
    assert_403(await client.delete(f"{KEYS}/{ops.info.id}", headers=bearer(ops_member_key)))
    assert_403(await client.delete(f"{KEYS}/{members_key['id']}", headers=bearer(ops_member_key)))
    assert (await client.get(ME, headers=bearer(ops.key))).json()["role"] == "admin"


@pytest.mark.parametrize("role", ["admin", "owner"])
async def test_admins_list_and_revoke_operator_keys_of_their_tenant_only(
    client: httpx.AsyncClient, make_account, role: str
) -> None:
    owner = await make_account("Alpha")
    other = await make_account("Beta")
    headers = owner.headers if role == "owner" else (await join(client, make_account, owner, role))[1]
    ops = await operator_key(owner.tenant_id)
    others_ops = await operator_key(other.tenant_id)

    items = (await client.get(KEYS, headers=headers)).json()["items"]
    assert [(k["id"], k["owner_kind"], k["created_by"]) for k in items] == [(str(ops.info.id), "operator", None)]
    assert (await client.delete(f"{KEYS}/{others_ops.info.id}", headers=headers)).status_code == 404
    assert (await client.get(ME, headers=bearer(others_ops.key))).status_code == 200
    assert await listed(client, other.headers) == {"ops"}

    assert (await client.delete(f"{KEYS}/{ops.info.id}", headers=headers)).status_code == 204
    assert_401(await client.get(ME, headers=bearer(ops.key)), "api_key_revoked")


async def test_a_demoted_member_loses_the_keys_above_their_new_role(
    backend: str, client: httpx.AsyncClient, make_account
) -> None:
    owner = await make_account()
    user, admin = await join(client, make_account, owner, "admin")
    strong = await make_key(client, admin, "strong", role="admin")
    weak = await make_key(client, bearer(strong["key"]), "weak", role="member")
    owner_ctx = await tenancy.authenticate(owner.token)

    await tenancy.change_member_role(owner_ctx, uuid.UUID(user.user_id), "member")

    assert_401(await client.get(ME, headers=bearer(strong["key"])), "api_key_revoked")
    assert (await client.get(ME, headers=bearer(weak["key"]))).json()["role"] == "member"


@pytest.mark.parametrize(("owner_kind", "with_user"), [("user", False), ("operator", True), ("nobody", False)])
async def test_the_database_refuses_a_key_without_a_clear_owner(
    backend: str, make_account, owner_kind: str, with_user: bool
) -> None:
    owner = await make_account()
    ctx = await tenancy.authenticate(owner.token)
    row = ApiKey(
        tenant_id=ctx.tenant_id,
        name="orphan",
        prefix="atom_" + uuid.uuid4().hex[:12],
        key_hash="0" * 64,
        role="member",
        owner_kind=owner_kind,
        created_by=ctx.user_id if with_user else None,
    )
    with pytest.raises(IntegrityError):
        async with session_scope(ctx) as session:
            session.add(row)
