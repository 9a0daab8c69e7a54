"""Signup, login, the current user, several tenants, API keys, members."""

from __future__ import annotations

import httpx

from tests.conftest import PASSWORD


async def test_signup_then_login_and_me(client: httpx.AsyncClient, make_account) -> None:
    account = await make_account("Acme Robotics")
    login = await client.post("/api/v1/auth/login", json={"email": account.email.upper(), "password": PASSWORD})
    assert login.status_code == 200
    assert login.json()["expires_at"].endswith("Z") or "+00:00" in login.json()["expires_at"]

    me = await client.get("/api/v1/me", headers={"Authorization": f"Bearer {login.json()['token']}"})
    assert me.status_code == 200
    body = me.json()
    assert body["email"] == account.email
    assert body["role"] == "owner"
    assert [t["slug"] for t in body["tenants"]] == ["acme-robotics"]


async def test_duplicate_signup_is_a_conflict(client: httpx.AsyncClient, make_account) -> None:
    account = await make_account()
    again = await client.post(
        "/api/v1/auth/signup", json={"email": account.email, "password": PASSWORD, "tenant_name": "Other"}
    )
    assert again.status_code == 409
    assert again.json()["error"]["field"] == "email"


async def test_wrong_password_is_401_without_saying_which_part(client: httpx.AsyncClient, make_account) -> None:
    account = await make_account()
    for email, password in ((account.email, "wrong-password-123"), ("nobody@example.com", PASSWORD)):
        response = await client.post("/api/v1/auth/login", json={"email": email, "password": password})
        assert response.status_code == 401
        assert response.json()["error"]["message"] == "email or password is incorrect"


async def test_user_in_two_tenants_picks_one_with_header(client: httpx.AsyncClient, make_account) -> None:
    alice = await make_account("Alpha")
    bob = await make_account("Beta")
    added = await client.post("/api/v1/members", json={"email": alice.email, "role": "viewer"}, headers=bob.headers)
    assert added.status_code == 201

    me = (await client.get("/api/v1/me", headers=alice.headers)).json()
    assert {t["tenant_id"]: t["role"] for t in me["tenants"]} == {alice.tenant_id: "owner", bob.tenant_id: "viewer"}

    in_beta = await client.get("/api/v1/me", headers=alice.headers | {"X-Tenant-ID": bob.tenant_id})
    assert in_beta.json()["tenant_id"] == bob.tenant_id
    assert in_beta.json()["role"] == "viewer"

    # A tenant the caller is not a member of: 403, and a malformed id: 4xx naming the header.
    carol = await make_account("Gamma")
    outsider = await client.get("/api/v1/me", headers=alice.headers | {"X-Tenant-ID": carol.tenant_id})
    assert outsider.status_code == 403
    malformed = await client.get("/api/v1/me", headers=alice.headers | {"X-Tenant-ID": "not-a-uuid"})
    assert malformed.status_code == 422
    assert malformed.json()["error"]["field"] == "X-Tenant-ID"


async def test_api_key_is_shown_once_and_works_until_revoked(client: httpx.AsyncClient, make_account) -> None:
    owner = await make_account()
    created = await client.post("/api/v1/api-keys", json={"name": "ci", "role": "admin"}, headers=owner.headers)
    assert created.status_code == 201
    key = created.json()["key"]
    assert key.startswith(created.json()["prefix"] + "_")

    listed = (await client.get("/api/v1/api-keys", headers=owner.headers)).json()["items"]
    assert [k["prefix"] for k in listed] == [created.json()["prefix"]]
    assert all("key" not in k for k in listed)

    as_key = await client.get("/api/v1/me", headers={"Authorization": f"Bearer {key}"})
    assert as_key.status_code == 200
    assert as_key.json()["role"] == "admin"
    assert as_key.json()["tenant_id"] == owner.tenant_id

    revoked = await client.delete(f"/api/v1/api-keys/{created.json()['id']}", headers=owner.headers)
    assert revoked.status_code == 204
    after = await client.get("/api/v1/me", headers={"Authorization": f"Bearer {key}"})
    assert after.status_code == 401


async def test_api_key_pagination(client: httpx.AsyncClient, make_account) -> None:
    owner = await make_account()
    for i in range(5):
        response = await client.post("/api/v1/api-keys", json={"name": f"k{i}"}, headers=owner.headers)
        assert response.status_code == 201
    seen: list[str] = []
    cursor = None
    while True:
        params = {"limit": 2} | ({"cursor": cursor} if cursor else {})
        page = (await client.get("/api/v1/api-keys", params=params, headers=owner.headers)).json()
        seen += [k["name"] for k in page["items"]]
        cursor = page["next_cursor"]
        if not cursor:
            break
    assert seen == ["k4", "k3", "k2", "k1", "k0"]
    bad = await client.get("/api/v1/api-keys", params={"cursor": "garbage!"}, headers=owner.headers)
    assert bad.status_code == 422
    assert bad.json()["error"]["field"] == "cursor"
