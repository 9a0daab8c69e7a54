"""A provider's error that echoes the tenant's key, in any form, never reaches anyone:
not the run's `error`, its spans, the SSE stream, the provider test, nor the server log.
Viewers read runs and spans; only admins manage providers."""

from __future__ import annotations

import base64
import json
import logging

import httpx
import pytest

from tests.api.test_runs import STUB_MODEL, agent, start
from tests.llm_stub import Fail, LLMStub

pytestmark = pytest.mark.usefixtures("loopback_allowed")  # the LLM stub listens on 127.0.0.1
KEY = "sk-lemon-QxZrVwKpJmTyHgNsWxyz"  # no run of four characters of it is hex, a date or a word
ECHOES = {
    "masked": f"{KEY[:8]}****{KEY[-4:]}",
    "url-encoded": "".join(f"%{byte:02X}" for byte in KEY.encode()),
    "base64": base64.b64encode(KEY.encode()).decode(),
    "spaced": " ".join(KEY),
    "plain": KEY,
}
FRAGMENTS = {KEY[i : i + 4] for i in range(len(KEY) - 3)}


def echoing(status: int) -> Fail:
    forms = "; ".join(f"{name}: {value}" for name, value in ECHOES.items())
    return Fail(status, f"Incorrect API key provided ({forms}).")


def leaks(text: str) -> list[str]:
    """The forms of the key, or pieces of it, found in `text`."""
    found = [name for name, value in ECHOES.items() if value in text]
    return found + sorted(f for f in FRAGMENTS if f in text)


@pytest.fixture
def no_retries(monkeypatch: pytest.MonkeyPatch) -> None:
    from atom_core.settings import reset_settings

    monkeypatch.setenv("ATOM_LLM_MAX_RETRIES", "0")
    reset_settings()


async def use_key(client: httpx.AsyncClient, owner, stub: LLMStub) -> None:
    body = {"api_key": KEY, "api_base": stub.base_url}
    assert (await client.put("/api/v1/providers/openai", json=body, headers=owner.headers)).status_code == 200


@pytest.mark.usefixtures("no_retries")
@pytest.mark.parametrize("status", [400, 401, 403, 404, 429, 500, 503])
async def test_a_key_echoed_by_the_provider_reaches_no_run_span_or_log(
    client: httpx.AsyncClient, make_account, llm_stub: LLMStub, caplog: pytest.LogCaptureFixture, status: int
) -> None:
    caplog.set_level(logging.INFO)
    owner = await make_account()
    await use_key(client, owner, llm_stub)
    helper = await agent(client, owner, model=STUB_MODEL)

    llm_stub.script("stub-model", echoing(status))
    run = await start(client, owner, helper["id"], "hi")
    assert run["status"] == "failed" and run["error"]
    assert f"HTTP {status}" in run["error"]  # the status and class stay: an admin can act on them
    detail = await client.get(f"/api/v1/agent-runs/{run['run_id']}", headers=owner.headers)
    assert detail.json()["spans"] and leaks(detail.text) == []
    listed = await client.get("/api/v1/agent-runs", headers=owner.headers)
    assert leaks(json.dumps(run)) == [] and leaks(listed.text) == []

    llm_stub.script("stub-model", echoing(status))
    async with client.stream(
        "POST", f"/api/v1/agents/{helper['id']}/runs", json={"input": "hi", "stream": True}, headers=owner.headers
    ) as response:
        stream = "".join([line async for line in response.aiter_lines()])
    assert "run.failed" in stream and leaks(stream) == []

    assert len(llm_stub.calls("stub-model")) == 2  # the provider really answered with the echo
    assert leaks(caplog.text) == []


@pytest.mark.parametrize("status", [400, 401, 429, 500])
async def test_the_provider_test_reports_an_echoed_key_in_no_form(
    client: httpx.AsyncClient, make_account, llm_stub: LLMStub, caplog: pytest.LogCaptureFixture, status: int
) -> None:
    caplog.set_level(logging.INFO)
    owner = await make_account()
    await use_key(client, owner, llm_stub)
    llm_stub.script("gpt-4o-mini", echoing(status))
    response = await client.post("/api/v1/providers/openai/test", json={}, headers=owner.headers)
    result = response.json()
    assert result["ok"] is False and f"HTTP {status}" in result["error"]
    assert leaks(response.text) == [] and leaks(caplog.text) == []
