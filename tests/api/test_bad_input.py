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


# ------------------------------------------- text and JSON values anywhere
# NUL, lone surrogates, deep nesting, huge values and out-of-range numbers are
# refused with a 4xx naming the field, and never stored: everything accepted
# reads back through get and list.

AGENTS = "/api/v1/agents"
WORKFLOWS = "/api/v1/workflows"
SPEC = {"name": "calc", "steps": [{"id": "add", "type": "tool", "tool": "calculator", "args": {"expression": "1+1"}}]}


def nested(depth: int, leaf: object = 1) -> object:
    value = leaf
    for _ in range(depth):
        value = {"n": value}
    return value


def raw_json(body: dict, **placeholders: str) -> bytes:
    """JSON text with raw fragments substituted for placeholder strings (`"DEEP"` -> `[[[…]]]`)."""
    text = json.dumps(body)
    for name, fragment in placeholders.items():
        text = text.replace(json.dumps(name), fragment)
    return text.encode()


async def post_raw(
    client: httpx.AsyncClient, url: str, body: bytes, headers: dict, method: str = "POST"
) -> httpx.Response:
    return await client.request(method, url, content=body, headers=headers | {"Content-Type": "application/json"})


async def agent_of(client: httpx.AsyncClient, owner) -> str:
    response = await client.post(AGENTS, json={"slug": "helper", "name": "Helper"}, headers=owner.headers)
    assert response.status_code == 201, response.text
    return response.json()["id"]


async def workflow_of(client: httpx.AsyncClient, owner) -> str:
    response = await client.post(WORKFLOWS, json={"spec": SPEC}, headers=owner.headers)
    assert response.status_code == 201, response.text
    return response.json()["id"]


async def assert_tenant_reads_back(client: httpx.AsyncClient, owner) -> None:
    for url in (AGENTS, WORKFLOWS, "/api/v1/runs"):
        listed = await client.get(url, headers=owner.headers)
        assert listed.status_code == 200, listed.text
        for item in listed.json()["items"]:
            one = f"/api/v1/runs/{item['run_id']}" if "run_id" in item else f"{url}/{item['id']}"
            assert (await client.get(one, headers=owner.headers)).status_code == 200


@pytest.mark.parametrize(
    ("body", "field"),
    [
        ({"slug": "a", "name": "A", "description": "x\x00y"}, "description"),
        ({"slug": "a", "name": "A", "system_prompt": "be\x00nice"}, "system_prompt"),
        ({"slug": "a", "name": "A\x00"}, "name"),
        ({"slug": "a", "name": "A", "category": "c\x00"}, "category"),
        ({"slug": "a", "name": "A", "tools": ["calc\x00"]}, "tools.0"),
        ({"slug": "a", "name": "A", "max_tokens": 1e30}, "max_tokens"),
        ({"slug": "a", "name": "A", "temperature": 1e30}, "temperature"),
        ({"slug": "a", "name": "A", "description": "SURROGATE"}, "description"),
        ({"slug": "a", "name": "A", "system_prompt": "SURROGATE"}, "system_prompt"),
    ],
)
async def test_agent_text_that_cannot_be_stored_is_refused(
    client: httpx.AsyncClient, make_account, body: dict, field: str
) -> None:
    owner = await make_account()
    assert_error(await post_raw(client, AGENTS, surrogate_json(body), owner.headers), 422, field)
    agent_id = await agent_of(client, owner)
    changes = {k: v for k, v in body.items() if k not in ("slug", "name")} or {"name": body["name"]}
    patched = await post_raw(client, f"{AGENTS}/{agent_id}", surrogate_json(changes), owner.headers, "PATCH")
    assert_error(patched, 422, field)
    await assert_tenant_reads_back(client, owner)


@pytest.mark.parametrize("text", ["hello\x00", "SURROGATE", "", "   "])
async def test_agent_run_input_that_cannot_be_stored_is_refused(
    client: httpx.AsyncClient, make_account, text: str
) -> None:
    owner = await make_account()
    agent_id = await agent_of(client, owner)
    for stream in (False, True):
        response = await post_raw(
            client, f"{AGENTS}/{agent_id}/runs", surrogate_json({"input": text, "stream": stream}), owner.headers
        )
        assert_error(response, 422, "input")
    assert (await client.get("/api/v1/analytics/summary", headers=owner.headers)).json()["totals"]["runs"] == 0


@pytest.mark.parametrize(
    ("body", "field"),
    [
        ({"spec": SPEC, "name": "calc\x00"}, "name"),
        ({"spec": SPEC | {"name": "ca\x00lc"}}, "spec.name"),
        ({"spec": SPEC | {"description": "about\x00"}}, "spec.description"),
        ({"spec": SPEC | {"description": "SURROGATE"}}, "spec.description"),
        ({"spec": json.dumps(SPEC | {"description": "about\x00"})}, "spec.description"),
        ({"spec": "name: x\x00\nsteps: []"}, "spec"),
        ({"spec": "name: x\nsteps:\n- {id: a, type: tool, tool: calculator, args: {expression: .nan}}"}, None),
        ({"spec": SPEC | {"steps": [{"id": "add", "type": "tool", "tool": "calculator", "args": {"k": 2**70}}]}}, None),
    ],
)
async def test_workflow_text_that_cannot_be_stored_is_refused(
    client: httpx.AsyncClient, make_account, body: dict, field: str | None
) -> None:
    owner = await make_account()
    for url in (WORKFLOWS, f"{WORKFLOWS}/validate") if field != "name" else (WORKFLOWS,):
        sent = {k: v for k, v in body.items() if url == WORKFLOWS or k == "spec"}
        error = assert_error(await post_raw(client, url, surrogate_json(sent), owner.headers), 422, field)
        assert error["field"].startswith("spec") or error["field"] == "name"
    if field == "name":
        return  # the rest sends the spec alone
    workflow_id = await workflow_of(client, owner)
    updated = await post_raw(
        client, f"{WORKFLOWS}/{workflow_id}", surrogate_json({"spec": body["spec"]}), owner.headers, "PUT"
    )
    assert_error(updated, 422, None)
    await assert_tenant_reads_back(client, owner)


@pytest.mark.parametrize("depth", [33, 41, 950, 955, 1000, 5000, 100_000])
@pytest.mark.parametrize("kind", ["object", "list"])
async def test_deep_nesting_is_refused_on_every_json_body(
    client: httpx.AsyncClient, make_account, depth: int, kind: str
) -> None:
    owner = await make_account()
    workflow_id = await workflow_of(client, owner)
    deep = ('{"n":' * depth + "1" + "}" * depth) if kind == "object" else ("[" * depth + "]" * depth)
    cases = [
        (WORKFLOWS, {"spec": "DEEP"}),
        (f"{WORKFLOWS}/validate", {"spec": "DEEP"}),
        (WORKFLOWS, {"spec": SPEC | {"description": "DEEP"}}),
        (f"{WORKFLOWS}/{workflow_id}/runs", {"input": {"x": "DEEP"}}),
        (AGENTS, {"slug": "a", "name": "DEEP"}),
    ]
    for url, body in cases:
        error = assert_error(await post_raw(client, url, raw_json(body, DEEP=deep), owner.headers), 422, None)
        assert error["field"] in ("body", "name") or error["field"].startswith(("spec", "input")), error
    await assert_tenant_reads_back(client, owner)


async def test_deep_spec_text_is_refused(client: httpx.AsyncClient, make_account) -> None:
    """Nesting inside YAML or JSON text is decoded by the service, not the request parser."""
    owner = await make_account()
    for depth in (40, 950, 5000):
        for text in ("[" * depth + "]" * depth, "a: " + "[" * depth + "]" * depth, "a:\n" + "- " * depth + "x"):
            response = await client.post(f"{WORKFLOWS}/validate", json={"spec": text}, headers=owner.headers)
            assert assert_error(response, 422, None)["field"].startswith("spec")


@pytest.mark.parametrize(
    ("body", "field"),
    [
        ({"version": 1e30}, "version"),
        ({"version": 2**63}, "version"),
        ({"version": 2**31}, "version"),
        ({"input": {"x": "a\x00b"}}, "input.x"),
        ({"input": {"x": ["ok", {"y": "SURROGATE"}]}}, "input.x[1].y"),
        ({"input": {"x\x00": 1}}, "input"),
        ({"input": {"SURROGATE": 1}}, "input"),
        ({"input": {"n": 2**53}}, "input.n"),
        ({"input": {"n": -(2**64)}}, "input.n"),
        ({"input": {"n": 10**400}}, "input.n"),
        ({"input": {"x": nested(34)}}, "input.x" + ".n" * 31),
        ({"input": {"x": "y" * 300_000}}, "input"),
    ],
)
async def test_run_input_that_cannot_be_read_back_is_refused(
    client: httpx.AsyncClient, make_account, body: dict, field: str
) -> None:
    owner = await make_account()
    workflow_id = await workflow_of(client, owner)
    response = await post_raw(client, f"{WORKFLOWS}/{workflow_id}/runs", surrogate_json(body), owner.headers)
    assert_error(response, 422, field)
    assert (await client.get("/api/v1/runs", headers=owner.headers)).json()["items"] == []


@pytest.mark.parametrize("literal", ["NaN", "Infinity", "-Infinity", "1e400"])
async def test_numbers_json_cannot_carry_are_refused(client: httpx.AsyncClient, make_account, literal: str) -> None:
    owner = await make_account()
    workflow_id = await workflow_of(client, owner)
    run = await post_raw(
        client, f"{WORKFLOWS}/{workflow_id}/runs", raw_json({"input": {"x": "N"}}, N=literal), owner.headers
    )
    assert_error(run, 422, "input.x")
    agent = await post_raw(
        client, AGENTS, raw_json({"slug": "a", "name": "A", "temperature": "N"}, N=literal), owner.headers
    )
    assert_error(agent, 422, "temperature")
    price = await client.put(
        "/api/v1/model-prices/openai/gpt-x",
        headers=owner.headers | {"Content-Type": "application/json"},
        content=raw_json({"input_usd_per_mtok": "N", "output_usd_per_mtok": 1}, N=literal),
    )
    assert_error(price, 422, "input_usd_per_mtok")


@pytest.mark.parametrize(
    ("url", "headers", "field"),
    [
        (f"{AGENTS}?q=a%00b", {}, "q"),
        (f"{AGENTS}?category=a%00b", {}, "category"),
        (f"{AGENTS}?cursor=%00", {}, "cursor"),
        (f"{WORKFLOWS}/00000000-0000-0000-0000-000000000000?version=100000000000000000000", {}, "version"),
        ("/api/v1/runs?status=nope", {}, "status"),
        ("/api/v1/runs/00000000-0000-0000-0000-000000000000/events?after=100000000000000000000", {}, "after"),
        ("/api/v1/runs/00000000-0000-0000-0000-000000000000/events", {"Last-Event-ID": "9" * 30}, "Last-Event-ID"),
        ("/api/v1/me", {"X-Tenant-ID": "not-a-uuid"}, "X-Tenant-ID"),
    ],
)
async def test_bad_query_values_are_refused_before_any_query(
    client: httpx.AsyncClient, make_account, url: str, headers: dict, field: str
) -> None:
    owner = await make_account()
    assert_error(await client.get(url, headers=owner.headers | headers), 422, field)


async def test_a_key_that_is_not_text_is_refused(client: httpx.AsyncClient, make_account) -> None:
    """The field named in the error is the client's own key: the error must still be sendable."""
    owner = await make_account()
    response = await post_raw(client, AGENTS, surrogate_json({"slug": "a", "name": "A", "SURROGATE": 1}), owner.headers)
    error = assert_error(response, 422, "body")
    assert "surrogate" in error["message"]


async def test_the_hardest_accepted_values_read_back(client: httpx.AsyncClient, make_account) -> None:
    """Max depth, near max size, astral characters, emoji, extreme numbers: stored and read back as sent."""
    owner = await make_account()
    other = await make_account("Other")
    text = "\U0001d518\U0001d52b astral 👩‍👩‍👧 مرحبا e\u0301 \u2028 \t\n" * 2
    agent = {
        "slug": "hard",
        "name": "Ünïcødé 👩‍👩‍👧",
        "description": ("🧪" * 2000)[:2000],
        "system_prompt": (text * 1000)[:20000],
        "max_tokens": 128_000,
        "temperature": 2,
    }
    created = await client.post(AGENTS, json=agent, headers=owner.headers)
    assert created.status_code == 201, created.text
    workflow_id = await workflow_of(client, owner)
    value = {
        "deep": nested(31, "bottom 🪨"),
        "numbers": [2**53 - 1, -(2**53 - 1), 1.7976931348623157e308, 5e-324, -0.0, 0],
        "text": text,
        "big": "\U0001d518" * 60_000,
        "🔑 key": [None, True, False, {}, []],
    }
    started = await client.post(f"{WORKFLOWS}/{workflow_id}/runs", json={"input": value}, headers=owner.headers)
    assert started.status_code == 202, started.text
    run_id = started.json()["run_id"]

    got = (await client.get(f"/api/v1/runs/{run_id}", headers=owner.headers)).json()
    assert got["input"] == value
    listed = (await client.get("/api/v1/runs", headers=owner.headers)).json()["items"]
    assert [r["input"] for r in listed] == [value]
    agent_back = (await client.get(f"{AGENTS}/{created.json()['id']}", headers=owner.headers)).json()
    assert {k: agent_back[k] for k in agent} == agent
    assert (await client.get(AGENTS, headers=owner.headers)).json()["items"][0]["system_prompt"] == agent[
        "system_prompt"
    ]
    await assert_tenant_reads_back(client, owner)
    # The other tenant sees none of it.
    assert (await client.get("/api/v1/runs", headers=other.headers)).json()["items"] == []
    assert (await client.get(f"/api/v1/runs/{run_id}", headers=other.headers)).status_code == 404
