"""Tokens, API keys, signing out, and the role matrix enforced by the services."""

from __future__ import annotations

import base64
import json
import os
import time
import uuid
import warnings
from collections.abc import Callable

import httpx
import jwt
import pytest
from jwt.warnings import InsecureKeyLengthWarning

from tests.conftest import PASSWORD, Account

KEYS = "/api/v1/api-keys"
MEMBERS = "/api/v1/members"
ME = "/api/v1/me"


def claims_for(account: Account, **changes: object) -> dict:
    now = time.time()
    claims = {"sub": account.user_id, "tid": account.tenant_id, "iss": "atom", "iat": now, "exp": int(now) + 600}
    return {k: v for k, v in (claims | changes).items() if v is not None}


def crafted(account: Account, *, secret: str | None = None, algorithm: str = "HS256", **changes: object) -> str:
    with warnings.catch_warnings():  # HS512 wants a longer key: irrelevant to a forgery
        warnings.simplefilter("ignore", InsecureKeyLengthWarning)
        return jwt.encode(claims_for(account, **changes), secret or os.environ["ATOM_SECRET_KEY"], algorithm=algorithm)


def unsigned(account: Account) -> str:
    def part(data: dict) -> str:
        return base64.urlsafe_b64encode(json.dumps(data).encode()).rstrip(b"=").decode()

    return f"{part({'alg': 'none', 'typ': 'JWT'})}.{part(claims_for(account))}."


def prefix_of(key: str) -> str:
    """`atom_<id>` of `atom_<id>_<secret>` (the secret may itself contain '_')."""
    return "_".join(key.split("_", 2)[:2])


def bearer(token: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}"}


def assert_401(response: httpx.Response, code: str | None = None) -> None:
    assert response.status_code == 401, response.text
    error = response.json()["error"]
    assert error["code"] and error["message"]
    if code:
        assert error["code"] == code, error


async def test_a_crafted_token_with_the_real_secret_works(client: httpx.AsyncClient, make_account) -> None:
    """The control for the forgeries below: only the tampered part makes them fail."""
    owner = await make_account()
    response = await client.get(ME, headers=bearer(crafted(owner)))
    assert response.status_code == 200
    assert response.json()["user_id"] == owner.user_id


BAD_CREDENTIALS: list[tuple[str, Callable[[Account, str], dict[str, str]], str | None]] = [
    ("missing header", lambda a, k: {}, "unauthorized"),
    ("basic scheme", lambda a, k: {"Authorization": "Basic " + base64.b64encode(b"u:p").decode()}, "unauthorized"),
    ("token without scheme", lambda a, k: {"Authorization": a.token}, "unauthorized"),
    ("empty bearer", lambda a, k: {"Authorization": "Bearer "}, "unauthorized"),
    ("garbage bearer", lambda a, k: bearer("garbage"), "invalid_token"),
    ("three dots", lambda a, k: bearer("a.b.c"), "invalid_token"),
    ("expired", lambda a, k: bearer(crafted(a, iat=time.time() - 7200, exp=int(time.time()) - 3600)), "token_expired"),
    ("forged", lambda a, k: bearer(crafted(a, secret="another-secret-" + "x" * 32)), "invalid_token"),
    ("alg none", lambda a, k: bearer(unsigned(a)), "invalid_token"),
    ("alg HS512", lambda a, k: bearer(crafted(a, algorithm="HS512")), "invalid_token"),
    ("no exp", lambda a, k: bearer(crafted(a, exp=None)), "invalid_token"),
    ("other issuer", lambda a, k: bearer(crafted(a, iss="evil")), "invalid_token"),
    ("sub not a uuid", lambda a, k: bearer(crafted(a, sub="admin")), "invalid_token"),
    ("unknown user", lambda a, k: bearer(crafted(a, sub=str(uuid.uuid4()))), "invalid_token"),
    ("tampered payload", lambda a, k: bearer(tamper(a.token)), "invalid_token"),
    ("key prefix only", lambda a, k: bearer("atom_"), "invalid_api_key"),
    ("malformed key", lambda a, k: bearer("atom_not-a-real-key"), "invalid_api_key"),
    ("key without secret", lambda a, k: bearer(prefix_of(k) + "_"), "invalid_api_key"),
    ("key with wrong secret", lambda a, k: bearer(prefix_of(k) + "_" + "A" * 43), "invalid_api_key"),
    ("key with extra text", lambda a, k: bearer(k + "x"), "invalid_api_key"),
    ("key of 10k chars", lambda a, k: bearer(k + "x" * 10_000), "invalid_api_key"),
]


def tamper(token: str) -> str:
    header, payload, signature = token.split(".")
    claims = json.loads(base64.urlsafe_b64decode(payload + "=" * (-len(payload) % 4)))
    claims["tid"] = str(uuid.uuid4())
    return f"{header}.{base64.urlsafe_b64encode(json.dumps(claims).encode()).rstrip(b'=').decode()}.{signature}"


@pytest.mark.parametrize(("case", "headers", "code"), BAD_CREDENTIALS, ids=[c[0] for c in BAD_CREDENTIALS])
async def test_bad_credentials_are_401_with_the_envelope(
    client: httpx.AsyncClient, make_account, case: str, headers, code: str | None
) -> None:
    owner = await make_account()
    key = (await client.post(KEYS, json={"name": "ci"}, headers=owner.headers)).json()["key"]
    for method, url in (("GET", ME), ("GET", KEYS), ("POST", "/api/v1/auth/logout")):
        response = await client.request(method, url, headers=headers(owner, key))
        assert_401(response, code)
    assert (await client.get(ME, headers=owner.headers)).status_code == 200  # the real ones still work
    assert (await client.get(ME, headers=bearer(key))).status_code == 200


async def test_revoked_key_is_401(client: httpx.AsyncClient, make_account) -> None:
    owner = await make_account()
    created = (await client.post(KEYS, json={"name": "ci"}, headers=owner.headers)).json()
    assert (await client.delete(f"{KEYS}/{created['id']}", headers=owner.headers)).status_code == 204
    assert_401(await client.get(ME, headers=bearer(created["key"])), "api_key_revoked")
    assert_401(await client.post(KEYS, json={"name": "x"}, headers=bearer(created["key"])), "api_key_revoked")


async def test_logout_revokes_earlier_tokens_and_a_new_login_works(client: httpx.AsyncClient, make_account) -> None:
    owner = await make_account()
    second = (await client.post("/api/v1/auth/login", json={"email": owner.email, "password": PASSWORD})).json()
    key = (await client.post(KEYS, json={"name": "ci"}, headers=owner.headers)).json()["key"]

    assert (await client.post("/api/v1/auth/logout", headers=owner.headers)).status_code == 204

    assert_401(await client.get(ME, headers=owner.headers), "token_revoked")
    assert_401(await client.get(ME, headers=bearer(second["token"])), "token_revoked")
    fresh = await client.post("/api/v1/auth/login", json={"email": owner.email, "password": PASSWORD})
    assert fresh.status_code == 200
    assert (await client.get(ME, headers=bearer(fresh.json()["token"]))).status_code == 200
    # An API key is not a login: it cannot sign out (revoke it instead).
    assert (await client.post("/api/v1/auth/logout", headers=bearer(key))).status_code == 403


# --- the role matrix -------------------------------------------------------------


async def join(client: httpx.AsyncClient, make_account, owner: Account, role: str) -> tuple[Account, dict]:
    """A user with their own tenant who also joins `owner`'s tenant; headers act in the latter."""
    user = await make_account(f"Home of {role}")
    added = await client.post(MEMBERS, json={"email": user.email, "role": role}, headers=owner.headers)
    assert added.status_code == 201, added.text
    return user, user.headers | {"X-Tenant-ID": owner.tenant_id}


def assert_403(response: httpx.Response) -> None:
    assert response.status_code == 403, response.text
    assert response.json()["error"]["code"] == "forbidden"


@pytest.mark.parametrize(
    ("role", "key_role", "status"),
    [
        ("viewer", None, 403),
        ("viewer", "viewer", 403),
        ("member", None, 201),
        ("member", "viewer", 201),
        ("member", "member", 201),
        ("member", "admin", 403),
        ("member", "owner", 403),
        ("admin", "admin", 201),
        ("admin", "owner", 403),
        ("owner", "owner", 201),
    ],
)
async def test_who_may_create_which_api_key(
    client: httpx.AsyncClient, make_account, role: str, key_role: str | None, status: int
) -> None:
    owner = await make_account()
    headers = owner.headers if role == "owner" else (await join(client, make_account, owner, role))[1]
    body = {"name": "k"} | ({"role": key_role} if key_role else {})
    response = await client.post(KEYS, json=body, headers=headers)
    assert response.status_code == status, response.text
    if status == 201:
        assert response.json()["role"] == (key_role or "member")
    else:
        assert_403(response)
        assert (await client.get(KEYS, headers=owner.headers)).json()["items"] == []


@pytest.mark.parametrize(
    ("role", "new_role", "status"),
    [
        ("viewer", "viewer", 403),
        ("member", "viewer", 403),
        ("member", "member", 403),
        ("admin", "member", 201),
        ("admin", "admin", 201),
        ("admin", "owner", 403),
        ("owner", "owner", 201),
    ],
)
async def test_who_may_add_which_member(
    client: httpx.AsyncClient, make_account, role: str, new_role: str, status: int
) -> None:
    owner = await make_account()
    headers = owner.headers if role == "owner" else (await join(client, make_account, owner, role))[1]
    newcomer = await make_account("Newcomer")
    response = await client.post(MEMBERS, json={"email": newcomer.email, "role": new_role}, headers=headers)
    assert response.status_code == status, response.text
    in_tenant = await client.get(ME, headers=newcomer.headers | {"X-Tenant-ID": owner.tenant_id})
    if status == 201:
        assert in_tenant.json()["role"] == new_role
    else:
        assert_403(response)
        assert in_tenant.status_code == 403


async def test_members_see_and_revoke_only_their_own_keys(client: httpx.AsyncClient, make_account) -> None:
    owner = await make_account()
    _, member = await join(client, make_account, owner, "member")
    owners_key = (await client.post(KEYS, json={"name": "owner-key"}, headers=owner.headers)).json()
    members_key = (await client.post(KEYS, json={"name": "member-key"}, headers=member)).json()

    assert [k["name"] for k in (await client.get(KEYS, headers=member)).json()["items"]] == ["member-key"]
    assert {k["name"] for k in (await client.get(KEYS, headers=owner.headers)).json()["items"]} == {
        "owner-key",
        "member-key",
    }

    assert_403(await client.delete(f"{KEYS}/{owners_key['id']}", headers=member))
    assert (await client.get(ME, headers=bearer(owners_key["key"]))).status_code == 200
    assert (await client.delete(f"{KEYS}/{members_key['id']}", headers=member)).status_code == 204
    assert_401(await client.get(ME, headers=bearer(members_key["key"])), "api_key_revoked")


async def test_an_admin_revokes_anyones_key(client: httpx.AsyncClient, make_account) -> None:
    owner = await make_account()
    _, admin = await join(client, make_account, owner, "admin")
    _, member = await join(client, make_account, owner, "member")
    for headers in (owner.headers, member):
        key = (await client.post(KEYS, json={"name": "k"}, headers=headers)).json()
        assert (await client.delete(f"{KEYS}/{key['id']}", headers=admin)).status_code == 204
        assert_401(await client.get(ME, headers=bearer(key["key"])), "api_key_revoked")


async def test_another_tenants_key_is_not_found(client: httpx.AsyncClient, make_account) -> None:
    alice = await make_account("Alpha")
    bob = await make_account("Beta")
    key = (await client.post(KEYS, json={"name": "alpha"}, headers=alice.headers)).json()
    response = await client.delete(f"{KEYS}/{key['id']}", headers=bob.headers)
    assert response.status_code == 404
    assert response.json()["error"]["code"] == "not_found"
    assert (await client.get(ME, headers=bearer(key["key"]))).status_code == 200
    # A key is bound to its tenant: asking for another one is refused.
    assert (await client.get(ME, headers=bearer(key["key"]) | {"X-Tenant-ID": bob.tenant_id})).status_code == 403


@pytest.mark.parametrize(("key_role", "status"), [("viewer", 403), ("member", 201), ("admin", 201)])
async def test_an_api_key_acts_with_its_own_role(
    client: httpx.AsyncClient, make_account, key_role: str, status: int
) -> None:
    owner = await make_account()
    key = (await client.post(KEYS, json={"name": "k", "role": key_role}, headers=owner.headers)).json()["key"]
    response = await client.post(KEYS, json={"name": "child"}, headers=bearer(key))
    assert response.status_code == status, response.text
    escalate = await client.post(KEYS, json={"name": "child", "role": "owner"}, headers=bearer(key))
    assert_403(escalate)


async def test_removing_a_member_revokes_the_keys_they_created(client: httpx.AsyncClient, make_account) -> None:
    owner = await make_account()
    user, member = await join(client, make_account, owner, "member")
    key = (await client.post(KEYS, json={"name": "mine"}, headers=member)).json()["key"]
    own_tenant_key = (await client.post(KEYS, json={"name": "home"}, headers=user.headers)).json()["key"]
    owners_key = (await client.post(KEYS, json={"name": "owner"}, headers=owner.headers)).json()["key"]
    assert (await client.get(ME, headers=bearer(key))).status_code == 200

    assert (await client.delete(f"{MEMBERS}/{user.user_id}", headers=owner.headers)).status_code == 204

    assert_401(await client.get(ME, headers=bearer(key)), "api_key_revoked")
    assert (await client.get(ME, headers=member)).status_code == 403
    assert (await client.get(ME, headers=bearer(owners_key))).status_code == 200
    assert (await client.get(ME, headers=bearer(own_tenant_key))).status_code == 200  # their other tenant is untouched
    members = (await client.get(MEMBERS, headers=owner.headers)).json()["items"]
    assert [m["user_id"] for m in members] == [owner.user_id]


async def test_the_last_owner_cannot_be_removed(client: httpx.AsyncClient, make_account) -> None:
    owner = await make_account()
    response = await client.delete(f"{MEMBERS}/{owner.user_id}", headers=owner.headers)
    assert response.status_code == 409
    assert response.json()["error"]["code"] == "conflict"
    assert (await client.get(ME, headers=owner.headers)).json()["role"] == "owner"

    _, second_owner = await join(client, make_account, owner, "owner")
    assert (await client.delete(f"{MEMBERS}/{owner.user_id}", headers=second_owner)).status_code == 204
    assert (await client.get(ME, headers=owner.headers)).status_code == 403  # no longer a member


@pytest.mark.parametrize("role", ["admin", "member", "viewer"])
async def test_only_owners_remove_owners_and_only_managers_remove_anyone(
    client: httpx.AsyncClient, make_account, role: str
) -> None:
    owner = await make_account()
    _, actor = await join(client, make_account, owner, role)
    victim, _ = await join(client, make_account, owner, "viewer")
    assert_403(await client.delete(f"{MEMBERS}/{owner.user_id}", headers=actor))
    expected = 204 if role == "admin" else 403
    assert (await client.delete(f"{MEMBERS}/{victim.user_id}", headers=actor)).status_code == expected


async def test_removing_someone_from_another_tenant_is_not_found(client: httpx.AsyncClient, make_account) -> None:
    alice = await make_account("Alpha")
    bob = await make_account("Beta")
    response = await client.delete(f"{MEMBERS}/{bob.user_id}", headers=alice.headers)
    assert response.status_code == 404
    assert (await client.get(ME, headers=bob.headers)).json()["role"] == "owner"
