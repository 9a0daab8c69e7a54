"""Bad input is a 4xx naming the field, never a 500, and writes nothing."""

from __future__ import annotations

import json

import httpx
import pytest

from tests.conftest import PASSWORD

SIGNUP = "/api/v1/auth/signup"
LOGIN = "/api/v1/auth/login"
KEYS = "/api/v1/api-keys"
MEMBERS = "/api/v1/members"
LONG = "x" * 10_000
NEW_EMAIL = "newcomer@example.com"


def signup(**changes: object) -> dict:
    return {"email": NEW_EMAIL, "password": PASSWORD, "tenant_name": "Acme"} | changes


def login(**changes: object) -> dict:
    return {"email": NEW_EMAIL, "password": PASSWORD} | changes


def without(body: dict, name: str) -> dict:
    return {k: v for k, v in body.items() if k != name}


def assert_error(response: httpx.Response, status: int | None, field: str | None) -> dict:
    assert response.status_code < 500, response.text
    assert 400 <= response.status_code < 500, response.text
    if status is not None:
        assert response.status_code == status, response.text
    error = response.json()["error"]
    assert error["code"] and isinstance(error["code"], str)
    assert error["message"] and isinstance(error["message"], str)
    if field is not None:
        assert error.get("field") == field, error
    return error


# (path, body, status, field). Authenticated paths are called as a tenant owner.
BAD_BODIES = [
    # missing fields
    (SIGNUP, without(signup(), "email"), 422, "email"),
    (SIGNUP, without(signup(), "password"), 422, "password"),
    (SIGNUP, without(signup(), "tenant_name"), 422, "tenant_name"),
    (LOGIN, without(login(), "email"), 422, "email"),
    (LOGIN, without(login(), "password"), 422, "password"),
    (KEYS, {}, 422, "name"),
    (MEMBERS, {"email": NEW_EMAIL}, 422, "role"),
    (MEMBERS, {"role": "member"}, 422, "email"),
    # unknown fields
    (SIGNUP, signup(is_admin=True), 422, "is_admin"),
    (LOGIN, login(tenant_id="x"), 422, "tenant_id"),
    (KEYS, {"name": "ci", "scopes": ["all"]}, 422, "scopes"),
    (MEMBERS, {"email": NEW_EMAIL, "role": "member", "tenant_id": "x"}, 422, "tenant_id"),
    # wrong types
    (SIGNUP, signup(email=123), 422, "email"),
    (SIGNUP, signup(email=None), 422, "email"),
    (SIGNUP, signup(email=[NEW_EMAIL]), 422, "email"),
    (SIGNUP, signup(password=1234567890123), 422, "password"),
    (SIGNUP, signup(password=None), 422, "password"),
    (SIGNUP, signup(tenant_name=5), 422, "tenant_name"),
    (SIGNUP, signup(tenant_name={"name": "Acme"}), 422, "tenant_name"),
    (LOGIN, login(password=["a"]), 422, "password"),
    (KEYS, {"name": 5}, 422, "name"),
    (KEYS, {"name": "ci", "role": 3}, 422, "role"),
    (KEYS, {"name": "ci", "role": "root"}, 422, "role"),
    (MEMBERS, {"email": NEW_EMAIL, "role": "god"}, 422, "role"),
    (MEMBERS, {"email": 5, "role": "member"}, 422, "email"),
    # oversize and empty strings, control characters
    (SIGNUP, signup(tenant_name=LONG), 422, "tenant_name"),
    (SIGNUP, signup(tenant_name="t" * 101), 422, "tenant_name"),
    (SIGNUP, signup(tenant_name="   "), 422, "tenant_name"),
    (SIGNUP, signup(tenant_name=""), 422, "tenant_name"),
    (SIGNUP, signup(tenant_name="Acme\x00Corp"), 422, "tenant_name"),
    (SIGNUP, signup(tenant_name="Acme\nCorp"), 422, "tenant_name"),
    (SIGNUP, signup(email=LONG + "@example.com"), 422, "email"),
    (SIGNUP, signup(password=LONG), 422, "password"),
    (LOGIN, login(password=LONG), 422, "password"),
    (KEYS, {"name": LONG}, 422, "name"),
    (KEYS, {"name": "k" * 101}, 422, "name"),
    (KEYS, {"name": ""}, 422, "name"),
    (KEYS, {"name": " \t "}, 422, "name"),
    (KEYS, {"name": "ci\x1b[31m"}, 422, "name"),
    (MEMBERS, {"email": LONG + "@example.com", "role": "member"}, 422, "email"),
    # bad emails
    *[
        (path, body(email=email), 422, "email")
        for email in ("not-an-email", "a@", "@example.com", "a b@example.com", "user@example..com", "")
        for path, body in ((SIGNUP, signup), (LOGIN, login))
    ],
    (MEMBERS, {"email": "not-an-email", "role": "member"}, 422, "email"),
    # weak passwords on signup
    (SIGNUP, signup(password="Sh0rt!pw"), 422, "password"),
    (SIGNUP, signup(password=""), 422, "password"),
    (SIGNUP, signup(password="password123"), 422, "password"),
    (SIGNUP, signup(password="PassWord123"), 422, "password"),
    (SIGNUP, signup(password="aaaaabbbbbb"), 422, "password"),
    (SIGNUP, signup(email="robertsmith@example.com", password="RobertSmith-2024"), 422, "password"),
    # a well-formed member who has no account
    (MEMBERS, {"email": "nobody-here@example.com", "role": "member"}, 404, "email"),
]


@pytest.mark.parametrize(("path", "body", "status", "field"), BAD_BODIES)
async def test_bad_body_is_a_4xx_naming_the_field(
    client: httpx.AsyncClient, make_account, path: str, body: dict, status: int, field: str
) -> None:
    headers = (await make_account()).headers if path in (KEYS, MEMBERS) else {}
    response = await client.post(path, json=body, headers=headers)
    assert_error(response, status, field)


RAW_BODIES = [
    (b'{"email": "a@example.com", ', 400, "invalid_json"),
    (b"{'email': 'a@example.com'}", 400, "invalid_json"),
    (b"\xff\xfe\x00garbage", 400, "invalid_json"),
    (b"", 422, None),
    (b"null", 422, None),
    (b"[]", 422, None),
    (b'"just a string"', 422, None),
    (b"12", 422, None),
]


@pytest.mark.parametrize("path", [SIGNUP, LOGIN, KEYS, MEMBERS])
@pytest.mark.parametrize(("raw", "status", "code"), RAW_BODIES)
async def test_body_that_is_not_a_json_object_names_the_body(
    client: httpx.AsyncClient, make_account, path: str, raw: bytes, status: int, code: str | None
) -> None:
    headers = (await make_account()).headers if path in (KEYS, MEMBERS) else {}
    response = await client.post(path, content=raw, headers=headers | {"Content-Type": "application/json"})
    error = assert_error(response, status, "body")
    assert "None" not in error["message"]
    if code:
        assert error["code"] == code


def surrogate_json(body: dict) -> bytes:
    """JSON holding a lone UTF-16 surrogate: valid JSON, not encodable as UTF-8."""
    return json.dumps(body).replace("SURROGATE", "\\ud800").encode()


@pytest.mark.parametrize(
    ("path", "body", "field"),
    [
        (SIGNUP, signup(tenant_name="AcmeSURROGATE"), "tenant_name"),
        (SIGNUP, signup(password="correct-horseSURROGATE"), "password"),
        (SIGNUP, signup(email="newSURROGATEcomer@example.com"), "email"),
        (LOGIN, login(password="correct-horseSURROGATE"), "password"),
        (KEYS, {"name": "ciSURROGATE"}, "name"),
    ],
)
async def test_unencodable_text_is_bad_input_not_a_crash(
    client: httpx.AsyncClient, make_account, path: str, body: dict, field: str
) -> None:
    headers = (await make_account()).headers if path == KEYS else {}
    response = await client.post(
        path, content=surrogate_json(body), headers=headers | {"Content-Type": "application/json"}
    )
    assert_error(response, None, field)


@pytest.mark.parametrize(
    ("method", "url", "field"),
    [
        ("GET", f"{KEYS}?limit=0", "limit"),
        ("GET", f"{KEYS}?limit=201", "limit"),
        ("GET", f"{KEYS}?limit=ten", "limit"),
        ("GET", f"{KEYS}?limit=99999999999999999999999", "limit"),
        ("GET", f"{KEYS}?cursor={'c' * 300}", "cursor"),
        ("DELETE", f"{KEYS}/not-a-uuid", "key_id"),
        ("DELETE", f"{MEMBERS}/not-a-uuid", "user_id"),
    ],
)
async def test_bad_query_and_path_parameters(
    client: httpx.AsyncClient, make_account, method: str, url: str, field: str
) -> None:
    owner = await make_account()
    response = await client.request(method, url, headers=owner.headers)
    assert_error(response, 422, field)


@pytest.mark.parametrize(
    ("body", "field"),
    [
        (signup(password="password123"), "password"),
        (signup(password="newcomer-rocks-42"), "password"),
        (signup(tenant_name=LONG), "tenant_name"),
        (signup(tenant_name="Acme\x07"), "tenant_name"),
        (signup(role="owner"), "role"),
    ],
)
async def test_rejected_signup_writes_nothing(client: httpx.AsyncClient, body: dict, field: str) -> None:
    rejected = await client.post(SIGNUP, json=body)
    assert_error(rejected, 422, field)

    login_attempt = await client.post(LOGIN, json={"email": NEW_EMAIL, "password": body["password"]})
    assert login_attempt.status_code == 401, login_attempt.text
    assert login_attempt.json()["error"]["code"] == "invalid_credentials"

    accepted = await client.post(SIGNUP, json=signup())
    assert accepted.status_code == 201, accepted.text
    me = await client.get("/api/v1/me", headers={"Authorization": f"Bearer {accepted.json()['token']}"})
    assert [t["slug"] for t in me.json()["tenants"]] == ["acme"]


@pytest.mark.parametrize(
    "body",
    [{"name": LONG}, {"name": ""}, {"name": "ci", "role": "owner-ish"}, {"name": "ci", "extra": 1}, {"name": "a\x00"}],
)
async def test_rejected_api_key_create_writes_nothing(client: httpx.AsyncClient, make_account, body: dict) -> None:
    owner = await make_account()
    kept = await client.post(KEYS, json={"name": "kept"}, headers=owner.headers)
    assert kept.status_code == 201
    before = (await client.get(KEYS, headers=owner.headers)).json()

    assert_error(await client.post(KEYS, json=body, headers=owner.headers), 422, None)

    after = (await client.get(KEYS, headers=owner.headers)).json()
    assert after == before
    assert [k["name"] for k in after["items"]] == ["kept"]


@pytest.mark.parametrize("changes", [{"role": "boss"}, {"role": None}, {"email": "not-an-email"}, {"extra": 1}])
async def test_rejected_member_add_writes_nothing(client: httpx.AsyncClient, make_account, changes: dict) -> None:
    owner = await make_account()
    other = await make_account("Other")
    before = (await client.get(MEMBERS, headers=owner.headers)).json()

    body = {"email": other.email, "role": "member"} | changes
    assert_error(await client.post(MEMBERS, json=body, headers=owner.headers), 422, next(iter(changes)))

    assert (await client.get(MEMBERS, headers=owner.headers)).json() == before
    me = (await client.get("/api/v1/me", headers=other.headers)).json()
    assert [t["tenant_id"] for t in me["tenants"]] == [other.tenant_id]


async def test_body_over_one_mebibyte_is_413(client: httpx.AsyncClient) -> None:
    huge = json.dumps(signup(tenant_name="x" * (1024 * 1024))).encode()
    response = await client.post(SIGNUP, content=huge, headers={"Content-Type": "application/json"})
    assert response.status_code == 413
    assert response.json()["error"]["code"] == "payload_too_large"
    assert (await client.post(LOGIN, json=login())).status_code == 401  # nothing was created


async def test_chunked_body_over_one_mebibyte_is_413(client: httpx.AsyncClient) -> None:
    """Without a Content-Length the limit must still hold (counting the bytes as they arrive)."""
    chunk = b" " * 65536

    async def body():
        yield b'{"email": "newcomer@example.com", "password": "correct-horse-battery", "tenant_name": "Acme"'
        for _ in range(20):  # 1.25 MiB of JSON whitespace
            yield chunk
        yield b"}"

    response = await client.post(SIGNUP, content=body(), headers={"Content-Type": "application/json"})
    assert "content-length" not in response.request.headers
    assert response.status_code == 413, response.text
    assert response.json()["error"]["code"] == "payload_too_large"
