"""Every operation of the OpenAPI schema, fuzzed as a real tenant's owner.

Schemathesis generates requests from the schema the API publishes (data that
fits it and data that does not); each is sent to the app in-process and its
response must be no 5xx, with a status, content type and body the schema
documents. Then every text and JSON field and parameter of every operation
gets the hostile classes by hand (NUL, lone surrogates, huge numbers, deep
nesting, huge strings), and everything the tenant stored must still read back.

Hypothesis runs its examples synchronously, so it runs in a worker thread and
hands each request to the test's event loop, where the app and its database
connections live.
"""

from __future__ import annotations

import asyncio
import json
import os
from typing import Any

import httpx
import pytest
import schemathesis
from hypothesis import HealthCheck, Phase, given, settings
from hypothesis.errors import Unsatisfiable
from schemathesis import GenerationMode
from schemathesis.checks import not_a_server_error
from schemathesis.specs.openapi.checks import (
    content_type_conformance,
    response_schema_conformance,
    status_code_conformance,
)

from atom_core.interfaces.api.app import create_api
from tests.api.test_bad_input import SPEC, agent_of, assert_tenant_reads_back, workflow_of

# Examples per operation and mode; ATOM_FUZZ_SCALE=10 for a longer hunt.
SCALE = int(os.environ.get("ATOM_FUZZ_SCALE", "1"))
EXAMPLES = {GenerationMode.POSITIVE: 5 * SCALE, GenerationMode.NEGATIVE: 3 * SCALE}
CHECKS = [not_a_server_error, status_code_conformance, content_type_conformance, response_schema_conformance]
BASE = "http://atom.test"


@pytest.fixture
def quick_models(monkeypatch: pytest.MonkeyPatch) -> None:
    """A fuzzed provider test must not wait on the network for long."""
    monkeypatch.setenv("ATOM_LLM_TIMEOUT_S", "2")
    monkeypatch.setenv("ATOM_LLM_MAX_RETRIES", "0")


def operations() -> list[Any]:
    schema = schemathesis.openapi.from_dict(create_api().openapi())
    found = [result.ok() for result in schema.get_all_operations()]
    # Signing out everywhere ends the fuzzing token: last.
    return sorted(found, key=lambda op: op.path == "/api/v1/auth/logout")


def request_of(case: Any, token: str) -> dict[str, Any]:
    sent = case.as_transport_kwargs(base_url=BASE, headers={"Authorization": f"Bearer {token}"})
    request = {k: sent[k] for k in ("method", "url", "headers", "params") if sent.get(k) is not None}
    if "json" in sent:  # JSON text as Python writes it: lone surrogates and all
        request["content"] = json.dumps(sent["json"]).encode()
    elif sent.get("data") is not None:
        request["content"] = sent["data"]
    return request


def fuzz(operation: Any, mode: GenerationMode, send) -> list[str]:
    failures: list[str] = []

    @settings(
        max_examples=EXAMPLES[mode],
        deadline=None,
        database=None,
        derandomize=True,
        phases=[Phase.explicit, Phase.generate],
        suppress_health_check=list(HealthCheck),
    )
    @given(case=operation.as_strategy(generation_mode=mode))
    def one(case: Any) -> None:
        response = send(case)
        try:
            case.validate_response(response, checks=CHECKS)
        except Exception as exc:  # schemathesis raises a group of check failures
            failures.append(f"{operation.method.upper()} {operation.path} ({mode}): {exc}"[:1500])

    try:
        one()
    except Unsatisfiable:  # nothing in this operation can break its schema (e.g. no parameters)
        assert mode == GenerationMode.NEGATIVE
    return failures


async def test_schema_fuzz_as_a_tenant_owner(client: httpx.AsyncClient, make_account, quick_models) -> None:
    owner = await make_account()
    loop = asyncio.get_running_loop()
    seen: dict[str, set[int]] = {}

    def send(case: Any) -> httpx.Response:
        request = request_of(case, owner.token)
        response = asyncio.run_coroutine_threadsafe(client.request(**request), loop).result(timeout=60)
        seen.setdefault(f"{case.method} {case.path}", set()).add(response.status_code)
        return response

    def run_all() -> list[str]:
        return [failure for op in operations() for mode in EXAMPLES for failure in fuzz(op, mode, send)]

    failures = await asyncio.to_thread(run_all)
    assert not failures, "\n\n".join(failures[:10])
    assert len(seen) == len(operations())
    # Authenticated as a real owner, no operation answers only "who are you?".
    assert not [name for name, statuses in seen.items() if statuses <= {401, 403}]
    # The schema and the server agree: what the schema allows is mostly accepted
    # (operations on an id need one that exists, which generated ids are not).
    without_ids = [name for name in seen if "{" not in name]
    accepted = [name for name in without_ids if any(s < 300 for s in seen[name])]
    assert len(accepted) >= 0.75 * len(without_ids), sorted(set(without_ids) - set(accepted))


# ------------------------------------------------- hostile values by hand


class Raw(str):
    """JSON text sent as it is (what Python's encoder would refuse to write)."""


def deep(depth: int, kind: str) -> Raw:
    return Raw('{"n":' * depth + "1" + "}" * depth if kind == "object" else "[" * depth + "]" * depth)


HOSTILE = [
    "a\x00b",
    "\ud800",
    "z" * 300_000,
    1e30,
    2**63,
    Raw("NaN"),
    deep(33, "object"),
    deep(950, "object"),
    deep(5000, "list"),
    {"k\x00": 1},
]


# NUL, a surrogate's bytes (not UTF-8), a lone 0xFF, and numbers and text too big.
QUERY_VALUES = ("a%00b", "%ED%A0%80", "%FF", "9" * 40, "-1", "1e30", "z" * 5000)


def raw_body(base: dict[str, Any], name: str, value: Any) -> bytes:
    if isinstance(value, Raw):
        return json.dumps(base | {name: "HOSTILE"}).replace('"HOSTILE"', value).encode()
    return json.dumps(base | {name: value}).encode()


def valid_bodies() -> dict[tuple[str, str], dict[str, Any]]:
    """A body each operation accepts, so that one hostile field reaches the service."""
    return {
        ("POST", "/api/v1/agents"): {"slug": "fuzzed", "name": "Fuzzed"},
        ("PATCH", "/api/v1/agents/{agent_id}"): {},
        ("POST", "/api/v1/agents/{agent_id}/runs"): {"input": "hello"},
        ("POST", "/api/v1/workflows"): {"spec": SPEC | {"name": "fuzzed"}},
        ("POST", "/api/v1/workflows/validate"): {"spec": SPEC},
        ("PUT", "/api/v1/workflows/{workflow_id}"): {"spec": SPEC},
        ("POST", "/api/v1/workflows/{workflow_id}/runs"): {"input": {}},
        ("POST", "/api/v1/api-keys"): {"name": "fuzzed"},
        ("PUT", "/api/v1/tool-settings"): {"http_allowed_hosts": []},
        ("PUT", "/api/v1/model-prices/{model}"): {"input_usd_per_mtok": 1, "output_usd_per_mtok": 1},
        ("POST", "/api/v1/marketplace/{template_slug}/install"): {},
    }


def url_of(path: str, ids: dict[str, str]) -> str:
    for name, value in ids.items():
        path = path.replace("{" + name + "}", value)
    return path


async def test_hostile_values_in_every_field_and_parameter(
    client: httpx.AsyncClient, make_account, quick_models
) -> None:
    owner = await make_account()
    other = await make_account("Other")
    agent_id, workflow_id = await agent_of(client, owner), await workflow_of(client, owner)
    ids = {
        "agent_id": agent_id,
        "workflow_id": workflow_id,
        "model": "openai/gpt-fuzz",
        "provider": "openai",
        "template_slug": "data-analyst",
    }
    bodies = valid_bodies()
    schema = create_api().openapi()
    problems: list[str] = []

    async def send(method: str, url: str, **kwargs: Any) -> None:
        response = await client.request(method, url, headers=owner.headers | kwargs.pop("headers", {}), **kwargs)
        if response.status_code >= 500:
            problems.append(f"{method} {url}: {response.status_code} {response.text[:200]}")
        elif response.status_code >= 400 and "error" not in response.json():
            problems.append(f"{method} {url}: no error envelope")

    for path, item in schema["paths"].items():
        for method, operation in item.items():
            method = method.upper()
            if path.endswith("/logout"):
                continue
            url = url_of(path, ids)
            body_schema = _body_schema(schema, operation)
            base = bodies.get((method, path), {})
            for name in body_schema.get("properties", {}):
                for value in HOSTILE:
                    content = raw_body(base, name, value)
                    await send(method, url, content=content, headers={"Content-Type": "application/json"})
            for parameter in operation.get("parameters", []):
                if parameter["in"] == "query":
                    for value in QUERY_VALUES:  # already URL-encoded: some are not UTF-8
                        content = json.dumps(base).encode() if base else None
                        await send(method, f"{url}?{parameter['name']}={value}", content=content)
            for name in ("X-Tenant-ID", "Last-Event-ID"):
                await send(method, url, headers={name: "not-a-number-" + "9" * 40})
    assert not problems, "\n".join(problems[:20])
    await assert_tenant_reads_back(client, owner)
    await assert_tenant_reads_back(client, other)


def _body_schema(schema: dict[str, Any], operation: dict[str, Any]) -> dict[str, Any]:
    content = operation.get("requestBody", {}).get("content", {}).get("application/json", {})
    found = content.get("schema", {})
    for option in found.get("anyOf", [found]):
        if "$ref" in option:
            return schema["components"]["schemas"][option["$ref"].rsplit("/", 1)[1]]
    return found
