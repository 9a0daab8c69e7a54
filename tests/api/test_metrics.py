"""/metrics is off the public surface: loopback clients only, or a bearer token when one is set."""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

import httpx
import pytest

from atom_core.settings import reset_settings

TOKEN = "scrape-" + "x" * 24


@asynccontextmanager
async def client_at(address: str) -> AsyncIterator[httpx.AsyncClient]:
    """A client whose connection comes from `address`."""
    from atom_core.interfaces.api.app import create_api

    transport = httpx.ASGITransport(app=create_api(), raise_app_exceptions=False, client=(address, 40000))
    async with httpx.AsyncClient(transport=transport, base_url="http://atom.test") as http:
        yield http


@pytest.mark.parametrize(
    ("address", "status"),
    [("127.0.0.1", 200), ("127.8.9.10", 200), ("::1", 200), ("::ffff:127.0.0.1", 200),
     ("203.0.113.7", 403), ("10.0.0.5", 403), ("2001:db8::1", 403), ("testclient", 403)],
)  # fmt: skip
async def test_without_a_token_only_this_machine_may_scrape(backend: str, address: str, status: int) -> None:
    async with client_at(address) as http:
        response = await http.get("/metrics")
    assert response.status_code == status, response.text
    if status == 200:
        assert "atom_http_requests_total" in response.text
    else:
        error = response.json()["error"]
        assert error["code"] == "forbidden" and "ATOM_METRICS_TOKEN" in error["message"]
        assert "atom_http_requests_total" not in response.text


@pytest.mark.parametrize(
    ("address", "authorization", "status"),
    [
        ("203.0.113.7", f"Bearer {TOKEN}", 200),
        ("203.0.113.7", f"bearer {TOKEN}", 200),
        ("203.0.113.7", None, 401),
        ("203.0.113.7", f"Bearer {TOKEN}x", 401),
        ("203.0.113.7", f"Basic {TOKEN}", 401),
        ("127.0.0.1", None, 401),  # with a token, being local is not enough
    ],
)
async def test_with_a_token_only_its_bearer_may_scrape(
    backend: str, monkeypatch: pytest.MonkeyPatch, address: str, authorization: str | None, status: int
) -> None:
    monkeypatch.setenv("ATOM_METRICS_TOKEN", TOKEN)
    reset_settings()
    headers = {"Authorization": authorization} if authorization else {}
    async with client_at(address) as http:
        response = await http.get("/metrics", headers=headers)
    assert response.status_code == status, response.text
    assert ("atom_http_requests_total" in response.text) == (status == 200)
    assert TOKEN not in response.text
